"""Monthly partitions: key `YYYY-MM` is the month the lists are ABOUT (October's lists arrive by 10 November).

The newest partition is the last complete month, so on 23 November 2026 it is 2026-10.
"""
import dagster as dg

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2024-01", fmt="%Y-%m")

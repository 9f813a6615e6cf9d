"""Partitions: months for a county, months x counties for a province, and the asset factory both use.

Month key `YYYY-MM` is the month the lists are ABOUT (October's lists arrive by 10 November); the newest partition is
the last complete month, so on 23 November 2026 it is 2026-10. A province runs every county's month as its own
partition (`county` keys are the folders under `counties/`, registered as dynamic partitions), so the same asset
code serves a county deployment (MONTHLY) and a provincial one (MONTH_BY_COUNTY).
"""
from typing import Callable

import dagster as dg

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2024-01", fmt="%Y-%m")
COUNTIES = dg.DynamicPartitionsDefinition(name="county")
MONTH_BY_COUNTY = dg.MultiPartitionsDefinition({"month": MONTHLY, "county": COUNTIES})
PARTITION_TAG = "dagster/partition"  # set by Dagster on a run of one partition: its key
COUNTY_TAG = "dagster/partition/county"  # set by Dagster on a run of one month x county partition
MONTH_TAG = "dagster/partition/month"  # likewise, its month


def latest_county_run(instance: dg.DagsterInstance, month: str, county: str) -> dg.DagsterRun | None:
    """The latest run of a county's month partition, whichever process ran it (None: never run as a partition)."""
    key = str(dg.MultiPartitionKey({"month": month, "county": county}))
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: key}), limit=1)
    return runs[0] if runs else None


def register_counties(instance: dg.DagsterInstance, counties: list[str]) -> None:
    """Add the counties not yet known as `county` partitions (what the counties sensor does, for a caller that runs
    counties before the sensor has seen them)."""
    known = set(instance.get_dynamic_partitions(COUNTIES.name))
    instance.add_dynamic_partitions(COUNTIES.name, [c for c in counties if c not in known])


def month_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """The month of the run's partition, whether partitioned by month or by month x county."""
    return month_of_key(context.partition_key)


def month_of_key(key: str | dg.MultiPartitionKey) -> str:
    """The month of a partition key: the key itself, or its month of a month x county key."""
    return key.keys_by_dimension["month"] if isinstance(key, dg.MultiPartitionKey) else key


def check_runnable_month(month: str) -> str:
    """`month` when it is a month partition; else a ValueError a clerk understands, naming the months that can run:
    from the first partition to the last month that has ended (its lists arrive the month after)."""
    if MONTHLY.has_partition_key(month):
        return month
    first, last = MONTHLY.get_first_partition_key(), MONTHLY.get_last_partition_key()
    raise ValueError(f"不能运行 {month}：可以运行的月份是 {first} 至 {last}（只能运行已经结束的月份，各部门在次月报送名单）。"
                     f" Month {month} cannot be run: months go from {first} to {last}, the last month that has ended.")


def partitioned_asset(**options) -> Callable:
    """Declare an asset body once, with its options; `build_assets` makes it an asset for each deployment."""

    def mark(body: Callable) -> Callable:
        body.asset_options = options
        return body

    return mark


def build_assets(bodies: list[Callable], partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [dg.asset(name=body.__name__, partitions_def=partitions, **body.asset_options)(body) for body in bodies]

"""Deadlines and case history: when a warning is issued, when the township must have verified it (入户核实,
household verification on site), and what became of earlier warnings.

A case is one household's open warning episode. Nothing here keeps counters: the state of a case in month M is
derived from `marts.warning_queue` of the months before M and `cases.verifications` (the townships' feedback), so
re-running any month gives the same tables. Verification results close a case whatever they say:
存在风险 (risk confirmed, goes on to identification), 已纳入监测 (already monitored), 不存在风险 (no risk),
查无此户 (no such household).
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

import duckdb

from fangpin.config import PROJECT_ROOT, check_month, county

log = logging.getLogger(__name__)

MARTS_SQL = PROJECT_ROOT / "schemas" / "marts.sql"

# Feedback results (the township's words) and how a case_status row groups them.
RESULT_STATUS = {
    "存在风险": ("已核实：存在风险", "verified"),
    "已纳入监测": ("已核实：已纳入监测", "verified"),
    "不存在风险": ("已排除：不存在风险", "rejected"),
    "查无此户": ("已排除：查无此户", "rejected"),
}
STATUS_NEW, STATUS_REPEAT, STATUS_OVERDUE, STATUS_PENDING = "新预警", "重复预警", "已逾期", "核实中"


def ensure_marts(con: duckdb.DuckDBPyConnection) -> None:
    """Create the marts/cases tables if missing (idempotent DDL, safe inside the caller's transaction)."""
    con.execute(MARTS_SQL.read_text(encoding="utf-8"))


def _due_day() -> int:
    return int(county()["submissions"]["due_day"])


def _month_start(month: str) -> date:
    check_month(month)
    year, mon = (int(part) for part in month.split("-"))
    return date(year, mon, 1)


def _next_month_start(month: str) -> date:
    start = _month_start(month)
    return date(start.year + (start.month == 12), start.month % 12 + 1, 1)


def previous_month(month: str) -> str:
    """'2026-01' -> '2025-12'."""
    start = _month_start(month)
    last = start - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def issue_date(month: str) -> date:
    """The day month M's queue is issued: the day after the departments' deadline in month M+1.

    Lists about October are due by the 10th of November (seed 003), so the October queue is issued on 11 November.
    Deterministic (never "today"), so re-runs give the same dates.
    """
    return _next_month_start(month) + timedelta(days=_due_day())


def issue_date_sql(month_expr: str) -> str:
    """The same rule as `issue_date`, as a DuckDB expression over a YYYY-MM text column (one rule, two spellings)."""
    return (f"(strptime({month_expr} || '-01', '%Y-%m-%d') + INTERVAL 1 MONTH "
            f"+ INTERVAL ({_due_day()}) DAY)::DATE")


def _is_workday(day: date) -> bool:
    """A Chinese working day (public holidays off, make-up working days on), per `chinese_calendar`.

    Years the package does not know yet fall back to Monday-Friday, with a warning, rather than stopping the run.
    """
    import chinese_calendar

    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        log.warning("chinese_calendar does not know %s; counting Monday-Friday as working days", day.year)
        return day.weekday() < 5


def due_date(issued: date, *, period_days: int | None = None, working_days: bool | None = None) -> date:
    """The verification deadline for a warning issued on `issued` (county.yaml `verification`).

    Calendar days by default (10 days, seed 004); with `working_days: true`, that many Chinese working days after
    the issue day (seed 000: 3 working days), skipping public holidays and counting make-up working days.
    The keyword overrides exist for tests and for a county that changes policy mid-year.
    """
    policy = county().get("verification", {})
    days = int(policy.get("period_days", 10) if period_days is None else period_days)
    working = bool(policy.get("working_days", False) if working_days is None else working_days)
    if not working:
        return issued + timedelta(days=days)
    current, counted = issued, 0
    while counted < days:  # loops over days of one deadline, not over data rows
        current += timedelta(days=1)
        counted += _is_workday(current)
    return current


def load_case_closures(con: duckdb.DuckDBPyConnection, month: str, cutoff: date,
                       table: str = "case_closures") -> None:
    """Temp table `table`: one row per case closed by a verification known on `cutoff`, for month M's state.

    Only feedback on workbooks issued before M counts (verification month < M), so M's state never depends on M's
    own queue or later months. A verification names its case by case_id; when the township left that blank, it
    belongs to the latest case of the household in a queue month at or before the verification's month. It counts
    from its verified_on date (undated: the day after its queue month was issued); the latest one wins.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH mapped AS (
            SELECT v.*,
                   coalesce(nullif(trim(v.case_id), ''),
                            (SELECT arg_max(q.case_id, q.month) FROM marts.warning_queue q
                             WHERE q.household_id = v.household_id AND q.month <= v.month)) AS mapped_case_id,
                   coalesce(v.verified_on, {issue_date_sql('v.month')} + INTERVAL 1 DAY)::DATE AS effective_on
            FROM cases.verifications v
            WHERE v.month < $month
        )
        SELECT mapped_case_id AS case_id,
               arg_max(result, (effective_on, source_file, row_number)) AS result,
               arg_max(verified_on, (effective_on, source_file, row_number)) AS verified_on,
               arg_max(verifier, (effective_on, source_file, row_number)) AS verifier,
               arg_max(remarks, (effective_on, source_file, row_number)) AS remarks,
               max(effective_on) AS effective_on
        FROM mapped
        WHERE mapped_case_id IS NOT NULL AND effective_on <= $cutoff
        GROUP BY mapped_case_id
    """, {"cutoff": cutoff, "month": month})


def load_open_cases(con: duckdb.DuckDBPyConnection, month: str) -> None:
    """Temp table `open_cases`: per household, its latest earlier case if still open when M's queue is issued.

    Columns: household_id, case_id, first_warned_on, case_due (the case's own deadline), last_month, overdue.
    The queue of M reads it: a household warned again while its case is open is a repeat, not a new case.
    """
    issued = issue_date(month)
    load_case_closures(con, month, issued)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE open_cases AS
        WITH latest AS (
            SELECT household_id, arg_max(case_id, month) AS case_id, arg_max(first_warned_on, month) AS first_warned_on,
                   arg_max(due_date, month) AS case_due, max(month) AS last_month
            FROM marts.warning_queue WHERE month < $month GROUP BY household_id
        )
        SELECT l.*, l.case_due < $issued AS overdue
        FROM latest l LEFT JOIN case_closures c USING (case_id)
        WHERE c.case_id IS NULL
    """, {"month": month, "issued": issued})


def build_case_status(con: duckdb.DuckDBPyConnection, month: str) -> int:
    """marts.case_status for `month`: what became of the earlier cases (verified, rejected, overdue, pending).

    Shows every case opened before M that was still open on the previous month's issue date, with its state on M's
    issue date. Overdue cases are escalated (base priority + county.yaml priority.overdue). Run after M's queue is
    written (it marks cases warned again this month). Returns the number of rows.
    """
    issued, prev_issued = issue_date(month), issue_date(previous_month(month))
    overdue_weight = float(county().get("priority", {}).get("overdue", 0))
    load_case_closures(con, month, issued, "closures_now")
    load_case_closures(con, month, prev_issued - timedelta(days=1), "closures_before")
    status_sql = " ".join(f"WHEN '{result}' THEN '{words}'" for result, (words, _) in RESULT_STATUS.items())
    group_sql = " ".join(f"WHEN '{result}' THEN '{group}'" for result, (_, group) in RESULT_STATUS.items())
    con.execute("DELETE FROM marts.case_status WHERE month = ?", [month])
    con.execute(f"""
        INSERT INTO marts.case_status (month, case_id, household_id, township, village, head_name, first_month,
            last_month, first_warned_on, due_date, status, status_group, result, verified_on, verifier, remarks,
            overdue, days_overdue, warned_again, priority, priority_reasons)
        WITH cases AS (
            SELECT case_id, min(month) AS first_month, max(month) AS last_month,
                   arg_max(household_id, month) AS household_id, arg_max(township, month) AS township,
                   arg_max(village, month) AS village, arg_max(head_name, month) AS head_name,
                   min(first_warned_on) AS first_warned_on, arg_max(due_date, month) AS due_date,
                   arg_max(base_priority, month) AS base_priority
            FROM marts.warning_queue WHERE month < $month GROUP BY case_id
        ), state AS (
            SELECT c.*, n.result, n.verified_on, n.verifier, n.remarks,
                   n.case_id IS NULL AND c.due_date < $issued AS overdue,
                   EXISTS (SELECT 1 FROM marts.warning_queue q WHERE q.month = $month AND q.case_id = c.case_id)
                       AS warned_again
            FROM cases c
            LEFT JOIN closures_now n USING (case_id)
            LEFT JOIN closures_before b USING (case_id)
            WHERE b.case_id IS NULL
        )
        SELECT $month, case_id, household_id, township, village, head_name, first_month, last_month,
               first_warned_on, due_date,
               CASE WHEN result IS NOT NULL THEN coalesce(CASE result {status_sql} END, '已核实：' || result)
                    WHEN overdue THEN '{STATUS_OVERDUE}' ELSE '{STATUS_PENDING}' END,
               CASE WHEN result IS NOT NULL THEN coalesce(CASE result {group_sql} END, 'verified')
                    WHEN overdue THEN 'overdue' ELSE 'pending' END,
               result, verified_on, verifier, remarks, overdue,
               CASE WHEN overdue THEN date_diff('day', due_date, $issued)::INTEGER END,
               warned_again,
               base_priority + CASE WHEN overdue THEN $overdue_weight ELSE 0 END,
               CASE WHEN overdue THEN '核实期限' || strftime(due_date, '%Y-%m-%d') || '已过，仍未反馈核实结果，升级处理'
                    WHEN result IS NOT NULL THEN '已反馈核实结果：' || result
                    ELSE '尚在核实期限内（' || strftime(due_date, '%Y-%m-%d') || '前）' END
        FROM state
        ORDER BY township, village, household_id, case_id
    """, {"month": month, "issued": issued, "overdue_weight": overdue_weight})
    return con.execute("SELECT count(*) FROM marts.case_status WHERE month = ?", [month]).fetchall()[0][0]

"""Did each department send each of its lists for the month, on time, and how clean was it (marts.submissions)?

The joint-meeting office (联席会议办公室) needs this as a report of its own: departments are responsible for the truth
and accuracy of their data (seed 003), and lists for month M are due by the 10th of M+1 (county.yaml
submissions.due_day). One row per list of the registry, received or not, so a department that sent nothing shows
as 未报送 (not received) instead of silently missing from the table.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from fangpin.config import check_month, county, registry
from fangpin.config import dashboard_settings
from fangpin.risk import ensure_risk_schema
from fangpin.warehouse import temp_table
from schemas.reasons import REJECT

DEFAULT_STATUS_WORDS = {"on_time": "按时报送", "late": "逾期报送", "missing": "未报送", "unknown_time": "已报送（到达时间不明）"}


def due_date(month: str) -> date:
    """The day lists for `month` are due: county.yaml submissions.due_day of the following month."""
    check_month(month)
    year, mon = (int(part) for part in month.split("-"))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return date(year, mon, int(county()["submissions"]["due_day"]))


def _lists_frame() -> pl.DataFrame:
    """Every department list of the registry, in registry order (the rows the report must have)."""
    reg = registry()
    rows = [{"ord": i, "list": spec.key, "department": spec.department,
             "department_name": reg.departments[spec.department].name, "list_title": spec.title, "kind": spec.kind}
            for i, spec in enumerate(reg.lists.values())]
    return pl.DataFrame(rows, schema={"ord": pl.Int32, "list": pl.String, "department": pl.String,
                                      "department_name": pl.String, "list_title": pl.String, "kind": pl.String})


def _reason_texts() -> pl.DataFrame:
    """Each quarantine reason code as a general sentence (the row's own values replaced by "…") for main_reasons."""
    rows = [{"reason_code": code, "text": re.sub(r"\{[^}]*\}", "…", template)} for code, template in REJECT.items()]
    return pl.DataFrame(rows, schema={"reason_code": pl.String, "text": pl.String})




def _arrival_sql(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """The arrival time of a file and where it came from: a recorded arrival when the warehouse has one, else the
    file's modification time, else the first run that saw it."""
    columns = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = 'received_files'"
    ).fetchall()}
    candidates = [c for c in ("arrived_at", "modified_at", "first_seen") if c in columns]
    value = f"coalesce({', '.join(f'{c}::TIMESTAMP' for c in candidates)})"
    source = "CASE " + " ".join(f"WHEN {c} IS NOT NULL THEN '{c}'" for c in candidates) + " END"
    return value, source


def build_submissions(con: duckdb.DuckDBPyConnection, month: str, *, settings: dict | None = None) -> dict:
    """Replace `month` in marts.submissions (inside the caller's transaction) and return counts by status."""
    check_month(month)
    settings = (settings or dashboard_settings()).get("submissions") or {}
    words = {**DEFAULT_STATUS_WORDS, **(settings.get("status_words") or {})}
    top = int(settings.get("main_reasons", 3))
    due = due_date(month)
    deadline = datetime.combine(due + timedelta(days=1), datetime.min.time())  # end of the due day
    ensure_risk_schema(con)
    temp_table(con, "_sb_lists", _lists_frame())
    temp_table(con, "_sb_reason_texts", _reason_texts())
    arrival, source = _arrival_sql(con)
    params = {"month": month, "deadline": deadline, "due_at": deadline - timedelta(microseconds=1), "due": due,
              **{f"w_{key}": text for key, text in words.items()}}
    con.execute("DELETE FROM marts.submissions WHERE month = $month", {"month": month})
    con.execute(f"""
        INSERT INTO marts.submissions
        WITH files AS (
            SELECT unnest(lists) AS list, department, {arrival} AS arrival, {source} AS arrival_source
            FROM raw.received_files WHERE month = $month AND status IS DISTINCT FROM 'duplicate'
        ),
        arrivals AS (
            SELECT list, max(arrival) AS arrived_at, arg_max(arrival_source, arrival) AS arrival_source,
                   count(*) AS files_seen
            FROM files GROUP BY list
        ),
        counts AS (
            SELECT list_key AS list, sum(files)::INTEGER AS files, sum(file_problems)::INTEGER AS file_problems,
                   sum(rows_read)::BIGINT AS rows, sum(rows_accepted)::BIGINT AS accepted_rows,
                   sum(rows_rejected)::BIGINT AS rejected_rows
            FROM raw.list_counts WHERE month = $month GROUP BY list_key
        ),
        reasons AS (
            SELECT r.list_key AS list, r.reason_code, coalesce(t.text, min(r.reason)) AS text, count(*) AS n
            FROM quarantine.rejected_rows r LEFT JOIN _sb_reason_texts t USING (reason_code)
            WHERE r.month = $month AND r.list_key IS NOT NULL
            GROUP BY r.list_key, r.reason_code, t.text
        ),
        reason_lists AS (
            SELECT list,
                   map(list(reason_code ORDER BY n DESC, reason_code), list(n::INTEGER ORDER BY n DESC, reason_code))
                       AS reason_counts,
                   string_agg(text || '（' || n || '条）', '；' ORDER BY n DESC, reason_code)
                       FILTER (WHERE rk <= {top}) AS main_reasons
            FROM (SELECT *, row_number() OVER (PARTITION BY list ORDER BY n DESC, reason_code) AS rk FROM reasons)
            GROUP BY list
        ),
        unrecognised AS (
            SELECT department, count(*)::INTEGER AS n FROM raw.received_files
            WHERE month = $month AND department IS NOT NULL AND status = 'quarantined' AND len(coalesce(lists, [])) = 0
            GROUP BY department
        ),
        joined AS (
            SELECT l.*, a.arrived_at, a.arrival_source, c.files, c.file_problems, c.rows, c.accepted_rows,
                   c.rejected_rows, r.reason_counts, r.main_reasons, coalesce(u.n, 0) AS unrecognised_files,
                   coalesce(c.files, 0) + coalesce(c.file_problems, 0) > 0 OR coalesce(a.files_seen, 0) > 0 AS received
            FROM _sb_lists l
            LEFT JOIN arrivals a USING (list) LEFT JOIN counts c USING (list) LEFT JOIN reason_lists r USING (list)
            LEFT JOIN unrecognised u USING (department)
        )
        SELECT $month, department, list, department_name, list_title, kind, $due_at, received,
               CASE WHEN received AND arrived_at IS NOT NULL THEN arrived_at < $deadline END AS on_time,
               CASE WHEN NOT received THEN $w_missing
                    WHEN arrived_at IS NULL THEN $w_unknown_time
                    WHEN arrived_at < $deadline THEN $w_on_time
                    ELSE $w_late END,
               CASE WHEN received THEN arrived_at END,
               CASE WHEN received THEN arrival_source END,
               CASE WHEN received AND arrived_at >= $deadline THEN date_diff('day', $due, arrived_at::DATE)::INTEGER END,
               coalesce(files, 0), coalesce(file_problems, 0), coalesce(rows, 0), coalesce(accepted_rows, 0),
               coalesce(rejected_rows, 0), coalesce(reason_counts, MAP {{}}::MAP(VARCHAR, INTEGER)), main_reasons,
               unrecognised_files
        FROM joined ORDER BY ord
    """, params)
    for name in ("_sb_lists", "_sb_reason_texts"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    rows = dict(con.execute("SELECT status, count(*) FROM marts.submissions WHERE month = ? GROUP BY status",
                            [month]).fetchall())
    silent = con.execute("""SELECT count(*) FROM (SELECT department FROM marts.submissions WHERE month = ?
                            GROUP BY department HAVING NOT bool_or(received))""", [month]).fetchone()[0]
    return {
        "lists": sum(rows.values()),
        "on_time": rows.get(words["on_time"], 0),
        "late": rows.get(words["late"], 0),
        "not_received": rows.get(words["missing"], 0),
        "unknown_time": rows.get(words["unknown_time"], 0),
        "departments_sent_nothing": silent,
    }


def submissions_markdown(con: duckdb.DuckDBPyConnection, month: str) -> str:
    """The month's lists that were late or not received, as Markdown (for Dagster metadata); all lists if none."""
    rows = con.execute("""
        SELECT department_name, list_title, status, coalesce(strftime(arrived_at, '%Y-%m-%d %H:%M'), ''),
               rows, rejected_rows, coalesce(main_reasons, '')
        FROM marts.submissions WHERE month = ? AND (on_time IS DISTINCT FROM true OR rejected_rows > 0)
        ORDER BY received, on_time NULLS FIRST, department, list
    """, [month]).fetchall()
    header = ["部门", "名单", "状态", "到达时间", "行数", "拒收行", "主要原因"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)

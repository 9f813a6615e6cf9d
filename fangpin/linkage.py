"""Linkage: each list row to a roster person by ID number, then to the household (户, the unit of monitoring).

Rules, in SQL that DuckDB runs, one `match_rule` and a `match_note` in words per row (Splink style: every decision
can be explained row by row):
- `id`: the list's (valid, normalised) ID number is a person of the roster.
- `probable_name`: the row was quarantined for its ID number (an id_* reason), but its name is exactly one person of
  the same township and village in the roster. Offered as a probable match and marked so, never merged silently.
- `none`: neither. Persons of risk lists land in marts.unmatched_persons with their sources and the list's township.
The roster used is the latest one at or before the month (normally the month's own).
"""
from __future__ import annotations

import duckdb
import polars as pl

from fangpin.cases import ensure_marts
from fangpin.config import check_month, registry
from fangpin.warnings import load_list_meanings
from fangpin.warehouse import temp_table

MATCH_RULES = ("id", "probable_name", "none")


def roster_month(con: duckdb.DuckDBPyConnection, month: str) -> str | None:
    """The roster month to link month M against: the latest loaded roster at or before M (None when there is none)."""
    rows = con.execute("SELECT max(month) FROM roster.persons WHERE month <= ?", [month]).fetchall()
    return rows[0][0]


def _places(con: duckdb.DuckDBPyConnection, rmonth: str | None) -> pl.DataFrame:
    """The roster's villages (township, village, division_code): what raw place names resolve against."""
    return con.sql("""
        SELECT township, village, any_value(division_code ORDER BY division_code) AS division_code
        FROM (SELECT township, village, division_code FROM roster.villages WHERE month = $rm
              UNION ALL
              SELECT township, village, division_code FROM roster.persons WHERE month = $rm)
        WHERE township IS NOT NULL AND village IS NOT NULL
        GROUP BY township, village ORDER BY township, village
    """, params={"rm": rmonth}).pl()


def _load_header_words(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table `header_words` (canonical, word, rank) for the detail and amount columns of a list.

    Quarantined rows keep only their raw cells (JSON header -> text); these words find the detail (原因…) and the
    amount (金额…) among them. Keys are compared after `_norm_header` on both sides, as the registry describes.
    """
    headers = registry().list_headers
    rows = [(canonical, word, rank) for canonical in ("detail", "amount")
            for rank, word in enumerate(headers.get(canonical, ()))]
    frame = pl.DataFrame(rows, schema={"canonical": pl.String, "word": pl.String, "rank": pl.Int32}, orient="row")
    temp_table(con, "header_words", frame)


def _norm_header(expr: str) -> str:
    """SQL: a header without spaces, with half-width brackets made full-width and a trailing colon dropped."""
    return (f"regexp_replace(replace(replace(regexp_replace({expr}, '\\s', '', 'g'), '(', '（'), ')', '）'), "
            f"'[：:]$', '')")


def _rejected_id_rows(con: duckdb.DuckDBPyConnection, month: str) -> pl.DataFrame:
    """Rows of known lists quarantined for their ID number (id_* reason), with detail and amount from the raw cells.

    One row per (list, file, sheet, row), whatever other reasons the row also had.
    """
    _load_header_words(con)
    return con.sql(f"""
        WITH rej AS (
            SELECT list_key, source_file, sheet, row_number,
                   arg_min(reason_code, reason_code) AS reason_code, arg_min(reason, reason_code) AS reason,
                   any_value(id_raw ORDER BY reason_code) AS id_raw, any_value(name ORDER BY reason_code) AS name,
                   any_value(township_raw ORDER BY reason_code) AS township_raw,
                   any_value(village_raw ORDER BY reason_code) AS village_raw,
                   any_value(raw ORDER BY reason_code) AS raw
            FROM quarantine.rejected_rows
            WHERE month = $month AND reason_code LIKE 'id\\_%' ESCAPE '\\' AND row_number IS NOT NULL
              AND list_key IN (SELECT list_key FROM list_meanings)
            GROUP BY list_key, source_file, sheet, row_number
        ), cells AS (
            SELECT list_key, source_file, sheet, row_number,
                   unnest(map_entries(try(json_transform(raw, '"MAP(VARCHAR, VARCHAR)"')))) AS cell
            FROM rej
        ), picked AS (
            SELECT c.list_key, c.source_file, c.sheet, c.row_number,
                   arg_min(c.cell.value, h.rank) FILTER (WHERE h.canonical = 'detail') AS detail,
                   arg_min(c.cell.value, h.rank) FILTER (WHERE h.canonical = 'amount') AS amount_text
            FROM cells c JOIN header_words h ON {_norm_header('c.cell.key')} = {_norm_header('h.word')}
            WHERE nullif(trim(c.cell.value), '') IS NOT NULL
            GROUP BY ALL
        )
        SELECT r.list_key, r.source_file, r.sheet, r.row_number, r.reason_code, r.reason, r.id_raw,
               regexp_replace(r.name, '\\s', '', 'g') AS name, r.township_raw, r.village_raw,
               nullif(trim(p.detail), '') AS detail,
               try_cast(nullif(regexp_replace(p.amount_text, '[^0-9.\\-]', '', 'g'), '') AS DOUBLE) AS amount
        FROM rej r LEFT JOIN picked p USING (list_key, source_file, sheet, row_number)
        ORDER BY r.list_key, r.source_file, r.sheet, r.row_number
    """, params={"month": month}).pl()


def _resolve(frame: pl.DataFrame, places: pl.DataFrame) -> pl.DataFrame:
    """Raw township/village names resolved to the roster's canonical names (fangpin.values owns the rule)."""
    from fangpin.values import resolve_places

    resolved = resolve_places(frame, places)
    missing = {"township", "village"} - set(resolved.columns)
    if missing:
        raise RuntimeError(f"fangpin.values.resolve_places returned no column(s) {sorted(missing)}")
    return resolved


def _load_probable_candidates(con: duckdb.DuckDBPyConnection, month: str, rmonth: str | None) -> int:
    """Temp table `link_rejected`: the quarantined-ID rows with places resolved; returns how many there are."""
    frame = _rejected_id_rows(con, month)
    if frame.height:
        frame = _resolve(frame, _places(con, rmonth))
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("township"), pl.lit(None, pl.String).alias("village"))
    columns = ["list_key", "source_file", "sheet", "row_number", "reason_code", "reason", "id_raw", "name",
               "township_raw", "village_raw", "township", "village", "detail", "amount"]
    frame = frame.select([pl.col(c).cast(pl.Float64 if c == "amount" else pl.Int32 if c == "row_number" else pl.String)
                          for c in columns])
    temp_table(con, "link_rejected", frame)
    return frame.height


LINK_SQL = """
INSERT INTO marts.person_links (month, list_key, department, kind, source_file, sheet, row_number, id_number,
    list_id_number, id_valid, name, township, village, township_raw, village_raw, detail, amount, event_date,
    household_id, roster_month, match_rule, match_note)
WITH roster_ids AS (
    -- one row per ID in the roster; an ID in two households is linked to the smallest household_id, and said so
    -- (households counted from the list of them, not by count(DISTINCT), which groups the rows a second time)
    SELECT id_number, min(household_id) AS household_id, len(list_distinct(list(household_id))) AS households,
           array_to_string(list_sort(list_distinct(list(household_id))), '、') AS household_list
    FROM roster.persons
    WHERE month = $rm AND id_number IN (SELECT id_number FROM staging.list_rows WHERE month = $month)  -- listed IDs only
    GROUP BY id_number
), accepted AS (
    SELECT r.*, m.kind, i.household_id AS linked_household, i.households, i.household_list
    FROM staging.list_rows r
    JOIN list_meanings m USING (list_key)
    LEFT JOIN roster_ids i ON i.id_number = r.id_number
    WHERE r.month = $month
), name_hits AS (
    -- probable matching: same name, same (resolved) township and village, in the roster
    SELECT q.list_key, q.source_file, q.sheet, q.row_number, count(p.id_number) AS hits,
           min(p.id_number) AS person_id, min(p.household_id) AS household_id
    FROM link_rejected q
    LEFT JOIN (SELECT * FROM roster.persons      -- the names and villages of rejected rows only (the bench county:
               -- its 1,000,000 persons all live in such villages; 0.38 -> 0.34 s, bench/FINDINGS.md session 26)
               WHERE month = $rm AND name IN (SELECT name FROM link_rejected)
                 AND (township, village) IN (SELECT (township, village) FROM link_rejected)) p
      -- roster names hold no spaces (validation removes every whitespace from them, validate._person_name:
      -- cleaning a million roster names again here cost ~0.2 CPU-s, bench/FINDINGS.md session 24); the list's name
      -- is cleaned in link_rejected
      ON p.name = q.name AND p.township = q.township AND p.village = q.village
    GROUP BY ALL
), rejected AS (
    SELECT q.*, m.department, m.kind, h.hits, h.person_id, h.household_id AS probable_household,
           coalesce(q.township, '') || coalesce(q.village, '') AS place
    FROM link_rejected q
    JOIN list_meanings m USING (list_key)
    JOIN name_hits h USING (list_key, source_file, sheet, row_number)
)
SELECT month, list_key, department, kind, source_file, sheet, row_number,
       id_number, id_number AS list_id_number, true AS id_valid, name, township, village, township_raw, village_raw,
       detail, amount, event_date, linked_household, $rm,
       CASE WHEN linked_household IS NULL THEN 'none' ELSE 'id' END,
       CASE WHEN $rm IS NULL THEN '没有花名册，无法匹配'
            WHEN linked_household IS NULL THEN '身份证号码' || id_number || '在花名册（' || $rm || '）中找不到'
            WHEN households = 1 THEN '身份证号码与花名册一致（户编号' || linked_household || '）'
            ELSE '身份证号码在花名册中属于' || households || '户（' || household_list || '），暂归入户编号'
                 || linked_household || '，请核实' END
FROM accepted
UNION ALL
SELECT $month, list_key, department, kind, source_file, sheet, row_number,
       CASE WHEN hits = 1 THEN person_id ELSE id_raw END, id_raw, false, name, township, village,
       township_raw, village_raw, detail, amount, NULL::DATE,
       CASE WHEN hits = 1 THEN probable_household END, $rm,
       CASE WHEN hits = 1 THEN 'probable_name' ELSE 'none' END,
       '身份证号码无效（' || reason || '）；' ||
       CASE WHEN name IS NULL OR name = '' THEN '也没有姓名，无法匹配'
            WHEN township IS NULL OR village IS NULL THEN
                 '乡镇/村（“' || coalesce(township_raw, '') || coalesce(village_raw, '') || '”）在花名册中无法确定，无法按姓名匹配'
            WHEN hits = 1 THEN '姓名“' || name || '”在' || place || '花名册中只有1人（身份证号码' || person_id
                 || '，户编号' || probable_household || '），疑似同一人，请核实'
            WHEN hits = 0 THEN place || '花名册中没有姓名为“' || name || '”的人'
            ELSE place || '花名册中有' || hits || '人姓名为“' || name || '”，无法确定是谁' END
FROM rejected
"""

UNMATCHED_SQL = """
INSERT INTO marts.unmatched_persons (month, id_number, id_valid, name, sources, township, village, details,
    locations, reason)
SELECT $month, id_number, id_valid, min(name),
       list_sort(list_distinct(list(list_key))),
       min(coalesce(township, township_raw)), min(coalesce(village, village_raw)),
       coalesce(list_sort(list_distinct(list(list_key || '：' || detail) FILTER (WHERE detail IS NOT NULL))), []),
       list_sort(list(source_file || '｜' || coalesce(sheet, '') || '｜第' || row_number || '行')),
       min(match_note)
FROM marts.person_links
WHERE month = $month AND match_rule = 'none' AND kind = 'risk'
GROUP BY id_number, id_valid, CASE WHEN id_valid THEN NULL ELSE name END,
         CASE WHEN id_valid THEN NULL ELSE coalesce(township, township_raw) END
ORDER BY min(coalesce(township, township_raw)), min(name), id_number
"""


def link_month(con: duckdb.DuckDBPyConnection, month: str) -> dict:
    """Link month M's list rows to the roster (marts.person_links) and record who could not be found
    (marts.unmatched_persons). Replaces only M's rows, inside the caller's transaction.

    Returns counts per match_rule ('id', 'probable_name', 'none') and 'unmatched_persons'.
    """
    check_month(month)
    ensure_marts(con)
    load_list_meanings(con)
    rmonth = roster_month(con, month)
    _load_probable_candidates(con, month, rmonth)
    con.execute("DELETE FROM marts.person_links WHERE month = ?", [month])
    con.execute("DELETE FROM marts.unmatched_persons WHERE month = ?", [month])
    con.execute(LINK_SQL, {"month": month, "rm": rmonth})
    con.execute(UNMATCHED_SQL, {"month": month})
    counts = dict(con.execute(
        "SELECT match_rule, count(*) FROM marts.person_links WHERE month = ? GROUP BY match_rule", [month]
    ).fetchall())
    result = {rule: int(counts.get(rule, 0)) for rule in MATCH_RULES}
    result["unmatched_persons"] = con.execute(
        "SELECT count(*) FROM marts.unmatched_persons WHERE month = ?", [month]).fetchall()[0][0]
    return result

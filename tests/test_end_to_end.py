"""A small demo county through the real Dagster job and CLI, into a temporary warehouse.

One module-scoped run (two months) serves every test here: the planted problems of the ground truth are each caught
with the right reason, counts reconcile, a re-run gives identical tables, and the exports exist per township.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fangpin.config import PROJECT_ROOT

MONTHS = ["2026-09", "2026-10"]
PERSONS = 3000


def _fangpin(*args: str, data_dir: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home), "FANGPIN_DATA_DIR": str(data_dir), "FANGPIN_LOCK_WAIT": "30"}
    return subprocess.run([sys.executable, "-m", "fangpin.cli", *args], env=env, capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=600)


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    from fangpin import demo

    root = tmp_path_factory.mktemp("county")
    data_dir, home = root / "data", root / "dagster_home"
    demo.generate(data_dir, months=MONTHS, persons=PERSONS)
    runs = [_fangpin("run", "--month", month, "--data-dir", str(data_dir), data_dir=data_dir, home=home) for month in MONTHS]
    return data_dir, home, runs


def _con(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "warehouse" / "fangpin.duckdb"), read_only=True)


def test_runs_succeed_and_print_the_summary(county):
    _, _, runs = county
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert "civil_affairs.dibao" in run.stdout
        assert "warehouse:" in run.stdout and "exports:" in run.stdout


def test_runs_are_recorded_in_the_dagster_instance(county):
    _, home, _ = county
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert {r.tags.get("dagster/partition") for r in runs} >= set(MONTHS)


def test_the_lists_step_logs_one_line_adding_up_its_lists(county):
    """One log line for the 22 lists (each line is an event-log write); its totals are the lists' own figures."""
    _, home, _ = county
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = next(r for r in instance.get_runs() if r.tags.get("dagster/partition") == MONTHS[-1])
        records = [r for r in instance.all_logs(run.run_id) if r.step_key == "department_lists"]
    lines = [r.user_message for r in records if r.dagster_event is None]
    read = sum(r.dagster_event.event_specific_data.materialization.metadata["rows_read"].value
               for r in records if r.dagster_event and r.dagster_event.event_type_value == "ASSET_MATERIALIZATION")
    assert len(lines) == 1 and f"读取 {read} 行" in lines[0] and read > 0


def test_every_list_reconciles(county):
    data_dir, _, _ = county
    with _con(data_dir) as con:
        bad = con.execute("SELECT list_key FROM raw.list_counts WHERE rows_read <> rows_accepted + rows_rejected").fetchall()
        assert bad == []
        accepted = con.execute("SELECT count(*) FROM staging.list_rows").fetchone()[0]
        assert accepted > 0


def _truth(data_dir: Path, month: str) -> pl.DataFrame:
    return pl.read_csv(data_dir / "demo_truth" / f"{month}.csv", infer_schema=False)


@pytest.mark.parametrize("month", MONTHS)
def test_each_planted_problem_is_caught_with_the_right_reason(county, month):
    data_dir, _, _ = county
    truth = _truth(data_dir, month)
    with _con(data_dir) as con:
        rejected = con.execute("SELECT source_file, coalesce(sheet,''), row_number, reason_code FROM quarantine.rejected_rows WHERE month = ?", [month]).fetchall()
        accepted = con.execute("SELECT source_file, coalesce(sheet,''), row_number FROM staging.list_rows WHERE month = ?", [month]).fetchall()
        notes = con.execute("SELECT source_file, coalesce(sheet,''), row_number, note_code FROM quarantine.row_notes WHERE month = ?", [month]).fetchall()
        files = con.execute("SELECT source_file, status, note FROM raw.received_files WHERE month = ?", [month]).fetchall()
    rejected_set = {(f, s, r, c) for f, s, r, c in rejected}
    file_problems = {(f, c) for f, s, r, c in rejected if r is None}
    accepted_set = set(accepted)
    notes_set = set(notes)
    ignored = {f for f, status, _ in files if status in ("ignored", "duplicate")}
    missed = []
    for row in truth.iter_rows(named=True):
        key = (row["source_file"], row["sheet"] or "", int(row["row_number"]) if row["row_number"] else None)
        expected, code = row["expected"], row["reason_code"]
        ok = {
            "rejected": lambda: (*key, code) in rejected_set,
            "accepted": lambda: key in accepted_set,
            "note": lambda: (*key, code) in notes_set,
            "file_problem": lambda: (row["source_file"], code) in file_problems,
            "ignored": lambda: row["source_file"] in ignored,
        }[expected]()
        if not ok:
            missed.append((row["problem"], expected, code, key))
    assert missed == [], f"{len(missed)} planted problems not caught as expected: {missed[:10]}"


def _table_digest(con, table: str, month: str) -> str:
    columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall() if c[0] not in ("first_seen",)]
    rows = con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE month = ? ORDER BY ALL", [month]).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


TABLES = ["raw.received_files", "raw.list_counts", "staging.list_rows", "quarantine.rejected_rows",
          "quarantine.row_notes", "roster.persons", "roster.households", "marts.warning_queue"]


def test_rerunning_a_month_gives_identical_tables_and_leaves_other_months(county):
    data_dir, home, _ = county
    with _con(data_dir) as con:
        before = {(t, m): _table_digest(con, t, m) for t in TABLES for m in MONTHS}
    rerun = _fangpin("run", "--month", MONTHS[0], "--data-dir", str(data_dir), data_dir=data_dir, home=home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with _con(data_dir) as con:
        after = {(t, m): _table_digest(con, t, m) for t in TABLES for m in MONTHS}
    assert after == before


def test_the_quality_results_are_those_of_the_suites_run_on_the_published_month(county):
    """The suites run in a background thread beside the steps after warehouse_month, on a snapshot of what it
    committed (FangpinData.start_quality_suites): their results are exactly those of running them afterwards."""
    from fangpin import quality

    data_dir, _, _ = county
    columns = [c for c in quality.RESULT_SCHEMA if c != "checked_at"]
    with _con(data_dir) as con:
        for month in MONTHS:
            stored = con.sql("SELECT * EXCLUDE (checked_at) FROM quality.results WHERE month = ?", params=[month]).pl()
            again = quality.run_list_suites(con, month).select(columns)
            assert stored.height > 50 and stored["success"].any()
            assert stored.sort(["suite", "check_name"]).rows() == again.sort(["suite", "check_name"]).rows()


def test_the_steps_that_collect_background_work_run_after_the_steps_it_overlaps(county):
    """`dagster/priority` -1 and -2: the in-process executor runs data_quality once linkage and the queue are done,
    and township_workbooks last of all, so the suites started after warehouse_month and the workbooks started after
    the queue have run beside the steps in between (FangpinData.start_ahead)."""
    _, home, _ = county
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = next(r for r in instance.get_runs() if r.tags.get("dagster/partition") == MONTHS[-1])
        started = [r.step_key for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]
        metadata = {r.asset_materialization.asset_key.path[-1]: r.asset_materialization.metadata for r in
                    instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)}
    after = started[started.index("warehouse_month") + 1:]
    assert {"person_links", "warning_queue"} < set(after[:after.index("data_quality")])
    assert {"township_risk", "data_quality", "county_dashboard"} < set(after[after.index("warning_queue"):
                                                                            after.index("township_workbooks")])
    quality, written = metadata["data_quality"], metadata["township_workbooks"]
    assert quality["suites_in_background"].value is True and quality["suites_seconds"].value > 0  # shown in the UI
    assert written["written_in_background"].value is True and written["workbooks"].value > 0


def test_workbooks_are_written_per_township(county):
    data_dir, _, _ = county
    month = MONTHS[-1]
    with _con(data_dir) as con:
        townships = {t for (t,) in con.execute("SELECT DISTINCT township FROM marts.warning_queue WHERE month = ?", [month]).fetchall()}
        audited = con.execute("SELECT count(*) FROM audit.exports WHERE month = ?", [month]).fetchone()[0]
    written = {p.stem for p in (data_dir / "exports" / month).glob("*.xlsx")}
    assert townships and townships <= written
    assert audited >= len(townships)


def test_a_bad_month_argument_is_refused_clearly(county):
    data_dir, home, _ = county
    result = _fangpin("run", "--month", "2026-13", data_dir=data_dir, home=home)
    assert result.returncode == 2 and "YYYY-MM" not in result.stdout and "2026-10" in result.stderr


def test_returned_workbooks_show_in_the_next_months_case_status(county):
    """Townships answer September's workbooks; the September re-run reads them; October then shows them as verified
    (or excluded) and the unanswered ones as overdue, on the warehouse and on October's workbooks."""
    from fangpin.demo_feedback import simulate_feedback

    data_dir, home, _ = county
    returned = simulate_feedback(data_dir, MONTHS[0])
    assert returned
    for month in MONTHS:
        run = _fangpin("run", "--month", month, "--data-dir", str(data_dir), data_dir=data_dir, home=home)
        assert run.returncode == 0, run.stderr[-3000:]
    with _con(data_dir) as con:
        verified = con.execute("SELECT count(*) FROM cases.verifications WHERE month = ?", [MONTHS[0]]).fetchone()[0]
        groups = dict(con.execute("SELECT status_group, count(*) FROM marts.case_status WHERE month = ? GROUP BY 1",
                                  [MONTHS[1]]).fetchall())
        feedback_rejections = con.execute("SELECT count(*) FROM quarantine.rejected_rows WHERE list_key = 'feedback'").fetchone()[0]
    assert verified > 0 and feedback_rejections == 0
    assert groups.get("verified", 0) + groups.get("rejected", 0) > 0
    assert groups.get("overdue", 0) > 0  # the township that did not answer

"""Crash safety and the one-writer rule, through the real CLI (issue 6, items 3 and 4).

What is promised, honestly: a monthly run is not one transaction but several, one per asset that writes:
warehouse_month (raw, staging, roster, quarantine: the whole ingestion of the month), then data_quality,
person_links, submissions, warning_queue, township_feedback and township_risk, each its own. A SIGKILL at any moment
leaves every one of these transactions either as it was before the run or as an uninterrupted run leaves it, never
half written, and never a mix of old and new tables within one transaction. It may leave early transactions new and
later ones old (e.g. new staging rows with last run's warning queue) until the next run, which completes them all and
gives exactly what an uninterrupted run gives. audit.exports is an append-only log and is not compared.

The scenario: a one-month demo county is run once with the emergency department's files held back (the "before"
state); the files then arrive late and the month is run again. "After" is that rerun uninterrupted, on a copy
(running beside the tests below). On the original warehouse, in this order: an analyst's open DuckDB session blocks a
run, which must wait, fail naming the holder's PID and change nothing; then the rerun is killed three times, each on
what the previous kill left: by the FANGPIN_CRASH_AT hook (fangpin.warehouse.transaction) with the ingestion
transaction fully written but not committed, by a timer around the ingestion write, and by the hook inside the last
mart (township_risk) after every earlier transaction was completed again. After every kill the warehouse is opened
(DuckDB replays its WAL) and each transaction's rows of the month are compared with the state before the kill and
with "after". Finally a plain run must complete and equal "after". The township workbooks and the dashboard are
files outside the warehouse (written through a temporary file and a rename) and are not checked here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from fangpin.config import PROJECT_ROOT, registry

MONTH = "2026-10"
PERSONS = 1500
LATE_DEPARTMENT = "emergency"  # its disaster list (the demo's flood) changes warnings and township risk
# Each writing asset's transaction and the rows it owns for the month: (table, extra condition).
TRANSACTIONS = {
    "warehouse_month": [("raw.received_files", ""), ("raw.list_counts", ""), ("staging.list_rows", ""),
                        ("roster.persons", ""), ("roster.households", ""), ("roster.townships", ""),
                        ("roster.villages", ""), ("quarantine.row_notes", ""),
                        ("quarantine.rejected_rows", "list_key IS DISTINCT FROM 'feedback'")],
    "data_quality": [("quality.results", "")],
    "person_links": [("marts.person_links", ""), ("marts.unmatched_persons", "")],
    "submissions": [("marts.submissions", "")],
    "warning_queue": [("marts.warning_queue", ""), ("marts.case_status", "")],
    "township_feedback": [("cases.verifications", ""), ("quarantine.rejected_rows", "list_key = 'feedback'")],
    "township_risk": [("marts.township_risk", ""), ("marts.village_risk", ""), ("marts.township_risk_types", ""),
                      ("marts.village_risk_types", "")],
}
WALL_CLOCK = {"first_seen", "checked_at", "exported_at"}  # when, not what: kept from earlier runs or stamped now
APPEND_ONLY = {"audit.exports"}
KILLED = -signal.SIGKILL


@dataclass
class Run:
    returncode: int
    output: str
    times: list[float]  # when each output line arrived (monotonic seconds)

    @property
    def started(self) -> list[str]:
        """Assets whose step started, in order (the progress lines '▶ name')."""
        return [line[2:].strip() for line in self.output.splitlines() if line.startswith("▶ ")]

    def step_seconds(self, asset: str) -> float:
        """From the asset's '▶' line to the next line (its own log line once it has written): how long it took."""
        lines = self.output.splitlines()
        index = lines.index(f"▶ {asset}")
        return self.times[index + 1] - self.times[index]


def _kill_group(pid: int) -> None:
    """SIGKILL the run and the helper processes it started (its own session, so nothing else is touched)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def fangpin_run(data_dir: Path, home: Path, *, crash_at: str | None = None, kill_after: tuple[str, float] | None = None,
                lock_wait: float = 30, timeout: float = 300) -> Run:
    """`fangpin run` in a subprocess; `kill_after=(asset, seconds)` SIGKILLs it that long after the asset started."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "FANGPIN_DATA_DIR": str(data_dir),
           "FANGPIN_LOCK_WAIT": str(lock_wait), "PYTHONUNBUFFERED": "1"}
    env.pop("FANGPIN_CRASH_AT", None)
    if crash_at:
        env["FANGPIN_CRASH_AT"] = crash_at
    proc = subprocess.Popen([sys.executable, "-m", "fangpin.cli", "run", "--month", MONTH, "--data-dir", str(data_dir)],
                            env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    timers = [threading.Timer(timeout, _kill_group, [proc.pid])]
    timers[0].start()
    lines, times = [], []
    try:
        for line in proc.stdout:  # EOF once the run and the log-tailing helpers it started have all exited
            lines.append(line)
            times.append(time.monotonic())
            if kill_after and len(timers) == 1 and line.startswith(f"▶ {kill_after[0]}"):
                timers.append(threading.Timer(kill_after[1], _kill_group, [proc.pid]))
                timers[-1].start()
        proc.wait(timeout=30)
    finally:
        for timer in timers:
            timer.cancel()
        _kill_group(proc.pid)
        proc.stdout.close()
    return Run(proc.returncode, "".join(lines), times)


def _month_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT DISTINCT table_schema || '.' || table_name FROM information_schema.columns "
                       "WHERE column_name = 'month' AND table_schema <> 'temp' "
                       "AND (table_schema, table_name) IN (SELECT table_schema, table_name FROM information_schema.tables "
                       "WHERE table_type = 'BASE TABLE') ORDER BY 1").fetchall()
    return [row[0] for row in rows if row[0] not in APPEND_ONLY]


def _digest(con: duckdb.DuckDBPyConnection, table: str, condition: str) -> str:
    """The month's rows of `table` (ordered by all columns, wall-clock columns left out) as one hash."""
    columns = [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall() if c not in WALL_CLOCK]
    select = ", ".join(f'"{c}"' for c in columns)
    where = f"month = ? AND ({condition})" if condition else "month = ?"
    rows = con.execute(f"SELECT {select} FROM {table} WHERE {where} ORDER BY ALL", [MONTH]).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def state(data_dir: Path) -> dict[str, tuple[str, ...]]:
    """Per transaction, the digests of its tables; a month table no transaction claims is its own group."""
    with duckdb.connect(str(data_dir / "warehouse" / "fangpin.duckdb"), read_only=True) as con:
        groups = dict(TRANSACTIONS)
        claimed = {table for members in TRANSACTIONS.values() for table, _ in members}
        groups.update({table: [(table, "")] for table in _month_tables(con) if table not in claimed})
        return {name: tuple(_digest(con, t, c) for t, c in members) for name, members in groups.items()}


def _hold_back(data_dir: Path, spare: Path) -> list[tuple[Path, Path]]:
    """Move the late department's files of the month out of the drop zone; return (spare, original) pairs."""
    names = {LATE_DEPARTMENT, registry().departments[LATE_DEPARTMENT].name}
    month_dir = data_dir / "raw" / MONTH
    moved = []
    for folder in (month_dir / name for name in names):
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            target = spare / path.relative_to(month_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            moved.append((target, path))
    assert moved, f"the demo wrote no {LATE_DEPARTMENT} file for {MONTH}"
    return moved


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """The warehouse before the late files (run once), and "after": the rerun with them, uninterrupted, on a copy."""
    from fangpin import demo

    root = tmp_path_factory.mktemp("crash")
    data_dir, home = root / "county" / "data", root / "county" / "dagster_home"
    demo.generate(data_dir, months=[MONTH], persons=PERSONS)
    held = _hold_back(data_dir, root / "late")
    first = fangpin_run(data_dir, home)
    assert first.returncode == 0, first.output[-3000:]
    for spare, original in held:  # the late files arrive (their modification times travel with them)
        shutil.move(spare, original)
    copy = root / "uninterrupted" / "data"
    shutil.copytree(data_dir, copy)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(run=fangpin_run(copy, root / "uninterrupted" / "home")))
    thread.start()  # runs beside the crashing runs below; joined when "after" is first needed
    before = state(data_dir)

    def after() -> dict:
        if "state" not in result:
            thread.join()
            assert result["run"].returncode == 0, result["run"].output[-3000:]
            result["state"] = state(copy)
        return result["state"]

    return {"data_dir": data_dir, "home": home, "before": before, "after": after, "current": dict(before),
            "ingestion_seconds": first.step_seconds("warehouse_month")}


def _check_killed(county: dict, run: Run, crashed_in: str | None) -> None:
    """After a kill: each transaction is before or after, never half; those that never started are untouched."""
    assert run.returncode == KILLED, f"the run was not killed (exit {run.returncode}):\n{run.output[-3000:]}"
    previous, now = county["current"], state(county["data_dir"])
    for name, digests in now.items():
        if digests != previous[name]:  # ("after" is asked for only when needed: it may still be running)
            assert digests == county["after"]()[name], f"{name} is half written after the kill"
            assert name not in TRANSACTIONS or name in run.started, f"{name} changed although its step never started"
    if crashed_in:
        assert now[crashed_in] == previous[crashed_in], f"{crashed_in} was killed before COMMIT but its rows changed"
        completed = run.started[:run.started.index(crashed_in)]
        for name in (n for n in completed if n in TRANSACTIONS):
            assert now[name] == county["after"]()[name], f"{name} finished before the kill but is not as after"
    county["current"] = now


def test_the_crash_hook_is_inert_outside_a_dagster_asset(tmp_path, monkeypatch):
    """FANGPIN_CRASH_AT names an asset; a transaction outside any asset (a library call) commits as usual."""
    import polars as pl

    from fangpin import warehouse

    monkeypatch.setenv("FANGPIN_CRASH_AT", "warehouse_month")
    notes = pl.DataFrame({"month": [MONTH], "source_file": ["f.xlsx"], "note_code": ["a"], "note": ["n"]})
    with warehouse.writer(tmp_path) as con, warehouse.transaction(con):
        warehouse.replace_month(con, "quarantine.row_notes", MONTH, notes)
    with warehouse.reader(tmp_path) as con:
        assert con.execute("SELECT note_code FROM quarantine.row_notes").fetchall() == [("a",)]


def test_a_locked_warehouse_makes_the_run_wait_then_fail_naming_the_holder(county):
    """An analyst's open DuckDB session (read-only still blocks a writer): the run waits FANGPIN_LOCK_WAIT, fails
    with a message naming the holder's PID and what to do, and leaves the warehouse as it was. The runs below
    must get past the lock again once the session is closed (the first of them dies in its own transaction)."""
    data_dir = county["data_dir"]
    path = data_dir / "warehouse" / "fangpin.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect(r'{path}', read_only=True); "
                               "print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        run = fangpin_run(data_dir, county["home"], lock_wait=2)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert run.returncode == 1, run.output[-3000:]
    assert f"PID {holder.pid}" in run.output and "数据仓库" in run.output, run.output[-3000:]
    assert "Close that DuckDB session" in run.output, run.output[-3000:]
    assert state(data_dir) == county["current"], "a run that could not get the warehouse changed it"


KILLS = ["hook_in_ingestion", "timed_in_ingestion", "hook_in_last_mart"]  # in this order, one warehouse


@pytest.mark.parametrize("how", KILLS)
def test_a_kill_leaves_every_transaction_before_or_after(county, how):
    """A hook kill dies in its asset with the transaction written but not committed, after the earlier
    transactions were completed again. The timed kill comes half the first run's ingestion step after the step
    started: on a busy machine it lands before BEGIN, on an idle one mid-transaction or after COMMIT; the invariant
    is asserted wherever it lands."""
    crashed_in = {"hook_in_ingestion": "warehouse_month", "hook_in_last_mart": "township_risk"}.get(how)
    kill_after = ("warehouse_month", county["ingestion_seconds"] / 2) if how.startswith("timed") else None
    run = fangpin_run(county["data_dir"], county["home"], crash_at=crashed_in, kill_after=kill_after)
    if crashed_in:
        assert run.started[-1] == crashed_in, run.output[-3000:]
    _check_killed(county, run, crashed_in)


def test_the_next_run_completes_and_equals_the_uninterrupted_run(county):
    run = fangpin_run(county["data_dir"], county["home"])
    assert run.returncode == 0, run.output[-3000:]
    assert state(county["data_dir"]) == county["after"]()


def test_before_and_after_differ_in_every_transaction_killed_above(county):
    """Without this the before/after comparisons above would prove nothing."""
    before, after = county["before"], county["after"]()
    for name in ("warehouse_month", "person_links", "submissions", "warning_queue", "township_risk"):
        assert before[name] != after[name], name

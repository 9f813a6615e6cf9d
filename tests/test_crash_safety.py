"""Crash safety and the one-writer rule, through the real CLI (issue 6, items 3 and 4).

What is promised: a run writes to a working copy of the warehouse and publishes it by one atomic rename when it
ends (fangpin.warehouse.RunWarehouse), so a SIGKILL at any moment leaves the whole warehouse either as it was before
the run or as an uninterrupted run leaves it: never half a month, never new staging rows beside last run's warning
queue. The next run throws the killed run's copy away and completes.

The scenario: a one-month demo county is run once with the emergency department's files held back (the "before"
state); the files then arrive late and the month is run again. "After" is that rerun uninterrupted, on a copy
(running beside the tests below). On the original warehouse, in this order: an analyst's open DuckDB session blocks a
run, which must wait, fail naming the holder's PID and change nothing; then the rerun is killed four times: by the
FANGPIN_CRASH_AT hook (fangpin.warehouse) inside the ingestion transaction written but not committed, by a timer
around the ingestion write, by the hook inside the last mart (township_risk) after every earlier step committed to
the copy, and by the hook at the publish step itself (the copy complete, the rename not yet done). After every kill
the warehouse is opened (DuckDB replays its WAL) and every month table is compared with "before" and "after".
Finally a plain run must complete and equal "after". The township workbooks and the dashboard are files outside the
warehouse (written through a temporary file and a rename) and are not checked here.
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
WALL_CLOCK = {"first_seen", "checked_at", "exported_at"}  # when, not what: kept from earlier runs or stamped now
AUDIT = "audit.exports"  # an append-only log: compared by its rows per kind (paths name the data dir)
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
    return [row[0] for row in rows if row[0] != AUDIT]


def _digest(con: duckdb.DuckDBPyConnection, table: str, condition: str) -> str:
    """The month's rows of `table` (ordered by all columns, wall-clock columns left out) as one hash."""
    columns = [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall() if c not in WALL_CLOCK]
    select = ", ".join(f'"{c}"' for c in columns)
    where = f"month = ? AND ({condition})" if condition else "month = ?"
    rows = con.execute(f"SELECT {select} FROM {table} WHERE {where} ORDER BY ALL", [MONTH]).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def state(data_dir: Path) -> dict[str, str]:
    """Every month table of the warehouse as a digest of the month's rows, and the audit log as rows per kind."""
    with duckdb.connect(str(data_dir / "warehouse" / "fangpin.duckdb"), read_only=True) as con:
        digests = {table: _digest(con, table, "") for table in _month_tables(con)}
        digests[AUDIT] = repr(con.execute(f"SELECT kind, month, count(*) FROM {AUDIT} GROUP BY ALL ORDER BY ALL").fetchall())
        return digests


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


def _check_killed(county: dict, run: Run) -> None:
    """After a kill the warehouse is as before the run, table for table: the killed run published nothing."""
    assert run.returncode == KILLED, f"the run was not killed (exit {run.returncode}):\n{run.output[-3000:]}"
    now = state(county["data_dir"])
    changed = sorted(table for table, digest in now.items() if digest != county["current"].get(table))
    assert not changed, f"a killed run changed {changed}"


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


KILLS = ["hook_in_ingestion", "timed_in_ingestion", "hook_in_last_mart", "hook_at_publish"]  # in order, one warehouse


@pytest.mark.parametrize("how", KILLS)
def test_a_kill_leaves_the_warehouse_as_before_the_run(county, how):
    """A hook kill dies in its asset with the transaction written to the run's copy but not committed (the last
    mart: after every earlier step committed to the copy), or at publish with the copy complete. The timed kill
    comes half the first run's ingestion step after the step started, wherever that lands. Each kill works on what
    the previous one left, including its stale working copy."""
    crashed_in = {"hook_in_ingestion": "warehouse_month", "hook_in_last_mart": "township_risk",
                  "hook_at_publish": "publish"}.get(how)
    kill_after = ("warehouse_month", county["ingestion_seconds"] / 2) if how.startswith("timed") else None
    run = fangpin_run(county["data_dir"], county["home"], crash_at=crashed_in, kill_after=kill_after)
    if crashed_in and crashed_in != "publish":
        assert run.started[-1] == crashed_in, run.output[-3000:]
    if crashed_in == "publish":
        assert "county_dashboard" in run.started, run.output[-3000:]
    _check_killed(county, run)


def test_the_next_run_completes_and_equals_the_uninterrupted_run(county):
    run = fangpin_run(county["data_dir"], county["home"])
    assert run.returncode == 0, run.output[-3000:]
    assert state(county["data_dir"]) == county["after"]()


def test_before_and_after_differ_where_the_late_files_matter(county):
    """Without this the before/after comparisons above would prove nothing."""
    before, after = county["before"], county["after"]()
    for table in ("staging.list_rows", "marts.person_links", "marts.submissions", "marts.warning_queue",
                  "marts.township_risk"):
        assert before[table] != after[table], table

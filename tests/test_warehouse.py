"""The warehouse writer: a month replaces only itself, and a locked file gives a message that says who holds it."""
from __future__ import annotations

import subprocess
import sys
import time

import polars as pl
import pytest

from fangpin import warehouse


def _notes(month: str, code: str) -> pl.DataFrame:
    return pl.DataFrame({"month": [month], "source_file": ["f.xlsx"], "note_code": [code], "note": ["n"]})


def test_replace_month_keeps_other_months(tmp_path):
    with warehouse.writer(tmp_path) as con:
        with warehouse.transaction(con):
            warehouse.replace_month(con, "quarantine.row_notes", "2026-09", _notes("2026-09", "a"))
            warehouse.replace_month(con, "quarantine.row_notes", "2026-10", _notes("2026-10", "b"))
        with warehouse.transaction(con):
            warehouse.replace_month(con, "quarantine.row_notes", "2026-10", _notes("2026-10", "c"))
        rows = con.execute("SELECT month, note_code FROM quarantine.row_notes ORDER BY month").fetchall()
    assert rows == [("2026-09", "a"), ("2026-10", "c")]


def test_failed_transaction_leaves_the_month_as_it_was(tmp_path):
    with warehouse.writer(tmp_path) as con:
        with warehouse.transaction(con):
            warehouse.replace_month(con, "quarantine.row_notes", "2026-10", _notes("2026-10", "kept"))
        with pytest.raises(RuntimeError):
            with warehouse.transaction(con):
                warehouse.replace_month(con, "quarantine.row_notes", "2026-10", _notes("2026-10", "half"))
                raise RuntimeError("crash in the middle of a month")
        assert con.execute("SELECT note_code FROM quarantine.row_notes").fetchall() == [("kept",)]


def test_a_reader_in_another_process_makes_the_writer_fail_clearly(tmp_path):
    with warehouse.writer(tmp_path):
        pass
    path = warehouse.warehouse_path(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect(r'{path}'); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.raises(warehouse.WarehouseBusy) as error:
            with warehouse.writer(tmp_path, wait_seconds=1.5):
                pass
        assert time.monotonic() - started < 10
        message = str(error.value)
        assert f"PID {holder.pid}" in message and "数据仓库" in message
    finally:
        holder.kill()


def test_a_runs_steps_write_through_one_connection_and_publish_makes_them_live(tmp_path):
    run = warehouse.RunWarehouse(tmp_path, wait_seconds=1)
    with run.writer() as first, warehouse.transaction(first):
        warehouse.replace_month(first, "quarantine.row_notes", "2026-10", _notes("2026-10", "step one"))
    with run.writer() as second:
        assert second is first
    assert run.publish()
    assert _live_notes(tmp_path) == [("step one",)]
    assert not warehouse.working_copy_path(warehouse.warehouse_path(tmp_path)).exists()


def test_a_step_that_fails_leaves_the_next_step_a_fresh_connection_to_what_was_committed(tmp_path):
    run = warehouse.RunWarehouse(tmp_path, wait_seconds=1)
    with run.writer() as con, warehouse.transaction(con):
        warehouse.replace_month(con, "quarantine.row_notes", "2026-10", _notes("2026-10", "committed"))
    with pytest.raises(RuntimeError):
        with run.writer() as failing:
            failing.execute("BEGIN TRANSACTION")  # a step that fails without rolling back its own transaction
            warehouse.replace_month(failing, "quarantine.row_notes", "2026-10", _notes("2026-10", "half"))
            raise RuntimeError("step failed")
    with run.writer() as next_step:
        assert next_step is not failing
        assert next_step.execute("SELECT note_code FROM quarantine.row_notes").fetchall() == [("committed",)]
    run.publish()
    assert _live_notes(tmp_path) == [("committed",)]


def _live_notes(data_dir) -> list[tuple]:
    with warehouse.reader(data_dir, wait_seconds=1) as con:
        return con.execute("SELECT note_code FROM quarantine.row_notes ORDER BY ALL").fetchall()

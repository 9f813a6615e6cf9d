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


def test_replace_month_matches_columns_by_name_even_added_in_the_same_transaction(tmp_path):
    """The frame's columns go to the table's columns of the same name, whatever their order; a column the table
    got earlier in the same transaction counts, one the table lacks is left out."""
    with warehouse.writer(tmp_path) as con:
        with warehouse.transaction(con):
            con.execute("CREATE SCHEMA IF NOT EXISTS scratch")
            con.execute('CREATE TABLE scratch.t (month VARCHAR, "列 名" VARCHAR, b INTEGER)')
            con.execute("ALTER TABLE scratch.t ADD COLUMN c DOUBLE")
            assert warehouse.table_columns(con, "scratch.t") == ["month", "列 名", "b", "c"]
            frame = pl.DataFrame({"c": [1.5], "extra": ["x"], "b": [2], "month": ["2026-10"], "列 名": ["甲"]})
            assert warehouse.replace_month(con, "scratch.t", "2026-10", frame) == 1
        assert con.execute("SELECT * FROM scratch.t").fetchall() == [("2026-10", "甲", 2, 1.5)]


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


def test_a_warehouse_from_before_the_quarantined_id_column_gets_it_and_keeps_its_rows(tmp_path):
    """quarantine.rejected_rows.id_number came later: opening an older warehouse adds the column (empty for the rows
    already there), and the month's rows are written with it."""
    import duckdb

    path = warehouse.warehouse_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as old:
        old.execute("CREATE SCHEMA quarantine")
        old.execute("""CREATE TABLE quarantine.rejected_rows (month VARCHAR NOT NULL, source_file VARCHAR NOT NULL,
            sheet VARCHAR, row_number INTEGER, list_key VARCHAR, column_name VARCHAR, reason_code VARCHAR NOT NULL,
            reason VARCHAR NOT NULL, id_raw VARCHAR, name VARCHAR, township_raw VARCHAR, village_raw VARCHAR,
            raw VARCHAR)""")
        old.execute("INSERT INTO quarantine.rejected_rows (month, source_file, reason_code, reason, id_raw) "
                    "VALUES ('2026-09', 'a.xlsx', 'duplicate_in_list', '…', '11010519491231002x')")
    rejected = pl.DataFrame({"month": ["2026-10"], "source_file": ["b.xlsx"], "reason_code": ["duplicate_in_list"],
                             "reason": ["…"], "id_raw": ["110105491231002"], "id_number": ["11010519491231002X"]})
    with warehouse.writer(tmp_path) as con, warehouse.transaction(con):
        warehouse.replace_month(con, "quarantine.rejected_rows", "2026-10", rejected)
        rows = con.execute("SELECT month, id_raw, id_number FROM quarantine.rejected_rows ORDER BY month").fetchall()
    assert rows == [("2026-09", "11010519491231002x", None), ("2026-10", "110105491231002", "11010519491231002X")]


def test_a_damaged_warehouse_file_is_named_with_what_to_do_and_left_as_it_is(tmp_path, capsys):
    """A warehouse overwritten with something that is no DuckDB database: every way in (a run's writer, the analysts'
    reader and snapshot, the run's summary) says so in fangpin's words, and nothing writes over the file."""
    from fangpin import snapshot, summary

    path = warehouse.warehouse_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x89PNG not a database" * 5000)
    ways_in = [lambda: warehouse.writer(tmp_path, wait_seconds=0).__enter__(),
               lambda: warehouse.reader(tmp_path, wait_seconds=0).__enter__(),
               lambda: warehouse.RunWarehouse(tmp_path, wait_seconds=0).writer().__enter__(),
               lambda: snapshot.build_snapshot(tmp_path, key=b"k" * 32, wait_seconds=0)]
    for way_in in ways_in:
        with pytest.raises(warehouse.WarehouseDamaged, match="已损坏或不是 DuckDB 数据库文件") as caught:
            way_in()
        assert str(path) in str(caught.value) and "Restore it from a backup" in str(caught.value)
    summary.print_summary(tmp_path, "2026-10", run_id="r", success=False)  # a message, not a traceback
    assert "已损坏或不是 DuckDB 数据库文件" in capsys.readouterr().out
    assert path.read_bytes() == b"\x89PNG not a database" * 5000

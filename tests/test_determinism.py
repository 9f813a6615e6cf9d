"""Deterministic reruns: the same inputs give byte-identical warehouse tables and exports (issue 6, item 6).

The demo county is generated twice from the same seed into two separate data directories, and the same month is
run from scratch in each through the real CLI (two processes at once, each with its own DAGSTER_HOME). Every table of
the warehouse is then exported as CSV ordered by all its columns and compared byte for byte: DuckDB writes a DOUBLE
as its shortest round-trip text, so a difference in the last bit of a float shows. Only columns that are wall-clock
by design are left out (WALL_CLOCK), and the data directory's own path is masked where a table records it.
The township workbooks are compared byte for byte; the dashboard too, with its "generated at" minute masked.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from fangpin.config import PROJECT_ROOT

MONTH = "2026-10"
PERSONS = 1500
# Columns that record when something happened, not what: the only ones allowed to differ between the two runs.
WALL_CLOCK = {
    "raw.received_files": ["first_seen"],
    "audit.exports": ["exported_at"],
    "quality.results": ["checked_at"],
}
# Schemas whose tables must match (every base table in them, found in the warehouse, not listed here by name).
SCHEMAS = ("raw", "staging", "roster", "quarantine", "marts", "cases", "quality", "audit")
GENERATED_AT = re.compile(r"生成时间：\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def _start_run(data_dir: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "FANGPIN_DATA_DIR": str(data_dir), "FANGPIN_LOCK_WAIT": "30"}
    env.pop("FANGPIN_CRASH_AT", None)
    env.pop("FANGPIN_WORKBOOK_PASSWORDS_FILE", None)  # encrypted workbooks carry a random salt: compared plain here
    return subprocess.Popen([sys.executable, "-m", "fangpin.cli", "run", "--month", MONTH, "--data-dir", str(data_dir)],
                            env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> list[Path]:
    """Two data directories generated from the same seed, the month run once in each (concurrently)."""
    from fangpin import demo

    root = tmp_path_factory.mktemp("twins")
    dirs = [root / "a" / "data", root / "b" / "data"]
    for data_dir in dirs:
        demo.generate(data_dir, months=[MONTH], persons=PERSONS)
    runs = [_start_run(d, d.parent / "dagster_home") for d in dirs]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]
    return dirs


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        f"WHERE table_type = 'BASE TABLE' AND table_schema IN ({', '.join('?' * len(SCHEMAS))}) ORDER BY 1",
        list(SCHEMAS)).fetchall()
    return [row[0] for row in rows]


def export_tables(data_dir: Path, out_dir: Path) -> dict[str, bytes]:
    """Every warehouse table as CSV bytes, rows ordered by all columns, wall-clock columns left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = {}
    with duckdb.connect(str(data_dir / "warehouse" / "fangpin.duckdb"), read_only=True) as con:
        for table in _tables(con):
            skip = WALL_CLOCK.get(table, [])
            columns = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall() if c not in skip]
            target = out_dir / f"{table}.csv"
            select = ", ".join(f'"{c}"' for c in columns)
            con.execute(f"COPY (SELECT {select} FROM {table} ORDER BY ALL) TO '{target}' (HEADER, DELIMITER ',')")
            exported[table] = target.read_bytes().replace(str(data_dir).encode(), b"<DATA_DIR>")
    return exported


def test_both_runs_fill_the_marts(twins):
    """Guard against comparing two empty warehouses: the month produced warnings, links and risk levels."""
    with duckdb.connect(str(twins[0] / "warehouse" / "fangpin.duckdb"), read_only=True) as con:
        for table in ("staging.list_rows", "marts.person_links", "marts.warning_queue", "marts.township_risk",
                      "marts.submissions", "roster.households", "quarantine.rejected_rows", "raw.list_counts"):
            assert con.execute(f"SELECT count(*) FROM {table} WHERE month = ?", [MONTH]).fetchone()[0] > 0, table


def test_every_table_is_byte_identical(twins, tmp_path):
    first, second = (export_tables(d, tmp_path / name) for d, name in zip(twins, "ab"))
    assert sorted(first) == sorted(second)
    assert {"marts.warning_queue", "raw.list_counts", "roster.households", "quarantine.rejected_rows"} <= set(first)
    differing = [table for table in first if first[table] != second[table]]
    assert differing == [], f"tables that differ between two runs of the same inputs: {differing}"


def test_floats_are_compared_to_the_last_bit(twins, tmp_path):
    """The CSV export keeps every bit of a DOUBLE (so the byte comparison above covers floating point)."""
    with duckdb.connect() as con:
        target = tmp_path / "f.csv"
        con.execute(f"COPY (SELECT 0.1::DOUBLE + 0.2::DOUBLE AS x, 1::DOUBLE / 3 AS y) TO '{target}' (HEADER)")
        x, y = target.read_text().splitlines()[1].split(",")
    assert float(x) == 0.1 + 0.2 and float(x) != 0.3 and float(y) == 1 / 3


def _exports(data_dir: Path) -> dict[str, bytes]:
    folder = data_dir / "exports" / MONTH
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_township_workbooks_are_byte_identical(twins):
    first, second = (_exports(d) for d in twins)
    workbooks = [name for name in first if name.endswith(".xlsx")]
    assert workbooks, "no township workbook was written"
    assert sorted(first) == sorted(second)
    assert [name for name in workbooks if first[name] != second[name]] == []


def test_dashboard_is_identical_but_for_its_generation_time(twins):
    pages = [(d / "exports" / MONTH / "dashboard.html").read_text(encoding="utf-8") for d in twins]
    assert all(GENERATED_AT.search(page) for page in pages)
    first, second = (GENERATED_AT.sub("生成时间：<masked>", page) for page in pages)
    assert first == second

"""bench.calibrate: the issue's calibration join over parquet rosters that name their columns each in its own words."""
from __future__ import annotations

import duckdb
import polars as pl
import pytest

from bench import calibrate


def _roster(path, id_header: str, household_header: str, households: dict[str, list[str]]) -> None:
    rows = [(household, person, "某某") for household, persons in households.items() for person in persons]
    pl.DataFrame(rows, schema=[household_header, id_header, "姓名"], orient="row").write_parquet(path)


def test_every_listed_id_is_joined_to_its_roster_row_in_every_county(tmp_path):
    _roster(tmp_path / "a.parquet", "身份证号", "户号", {"H1": ["A1", "A2"], "H2": ["A3"]})
    _roster(tmp_path / "b.parquet", "身份证号码", "户编号", {"H3": ["B1", "B2", "B3"]})
    con = duckdb.connect()
    listed = calibrate.prepare(con, [tmp_path / "a.parquet", tmp_path / "b.parquet"], share=1.0)
    matched, households, _, _ = calibrate.join_once(con)
    assert (listed, matched, households) == (6, 6, 3)


def test_a_sample_lists_some_ids_each_once(tmp_path):
    _roster(tmp_path / "a.parquet", "身份证号", "户号", {f"H{i}": [f"P{i}"] for i in range(2000)})
    con = duckdb.connect()
    listed = calibrate.prepare(con, [tmp_path / "a.parquet"], share=0.1)
    matched, households, _, _ = calibrate.join_once(con)
    assert 100 < listed < 300 and matched == households == listed


def test_a_roster_without_an_id_column_is_named(tmp_path):
    _roster(tmp_path / "a.parquet", "证件", "户号", {"H1": ["A1"]})
    with pytest.raises(ValueError, match=r"a\.parquet: no column for id_number"):
        calibrate.prepare(duckdb.connect(), [tmp_path / "a.parquet"])


def test_a_roster_naming_a_column_twice_is_read_by_the_readers_rule_the_exact_name_first(tmp_path):
    """户号 (an exact name) and 户编号（旧） (a prefix match) both name the household number: as fangpin's reader
    (`reading.header_columns`), the exact one is the household number, whichever comes last."""
    pl.DataFrame({"户号": ["H1", "H1"], "身份证号": ["A1", "A2"], "户编号（旧）": ["X1", "X2"]}).write_parquet(
        tmp_path / "a.parquet")
    con = duckdb.connect()
    calibrate.prepare(con, [tmp_path / "a.parquet"], share=1.0)
    assert con.execute("SELECT DISTINCT household_id FROM roster").fetchall() == [("H1",)]

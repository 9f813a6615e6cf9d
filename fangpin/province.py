"""The province: every county's month runs on its own (a month x county partition, one warehouse file per county, so
one writer per file), then the provincial marts are built from the county warehouses in DuckDB.

Provincial marts (in the province's own warehouse, `DIR/warehouse/fangpin.duckdb`):
- `province.township_risk` / `province.village_risk`: the county marts of the month, with their county (township
  names repeat across counties, so (county, township) is the key);
- `province.county_risk`: one row per county: townships per level, roster and warned households.
A county that has not run the month yet is listed in `province.county_risk` with `ran = false`, not left out.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from fangpin.config import check_month
from fangpin.risk import LEVELS
from fangpin.warehouse import warehouse_path
from pipelines.resources import COUNTIES_FOLDER, county_dir

COUNTY_MARTS = {"province.township_risk": "marts.township_risk", "province.village_risk": "marts.village_risk"}


def counties_found(province_dir: Path) -> list[str]:
    """Counties of the province: the folders under `counties/` that have a drop zone (`raw/`)."""
    folder = Path(province_dir) / COUNTIES_FOLDER
    return sorted(p.name for p in folder.iterdir() if (p / "raw").is_dir()) if folder.is_dir() else []


def ensure_province_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Provincial tables are the county marts with a `county` column in front (the county DDL stays the one truth)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS province")
    for table, source in COUNTY_MARTS.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT ''::VARCHAR AS county, * FROM {source} LIMIT 0")
    level_columns = ", ".join(f"townships_{level} INTEGER" for level in LEVELS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS province.county_risk (
        month VARCHAR NOT NULL, county VARCHAR NOT NULL, ran BOOLEAN NOT NULL, townships INTEGER,
        {level_columns}, households BIGINT, warned_households BIGINT, rate_per_1000 DOUBLE)""")


def build_province_marts(con: duckdb.DuckDBPyConnection, month: str, province_dir: Path) -> dict[str, int]:
    """Replace `month` in the provincial marts from every county's warehouse (read-only, one at a time)."""
    check_month(month)
    ensure_province_schema(con)
    for table in (*COUNTY_MARTS, "province.county_risk"):
        con.execute(f"DELETE FROM {table} WHERE month = ?", [month])
    counties = counties_found(province_dir)
    ran = [county for county in counties
           if _copy_county(con, month, county, warehouse_path(county_dir(province_dir, county)))]
    _county_rows(con, month, counties, ran)
    return {table: con.execute(f"SELECT count(*) FROM {table} WHERE month = ?", [month]).fetchone()[0]
            for table in (*COUNTY_MARTS, "province.county_risk")}


def _copy_county(con: duckdb.DuckDBPyConnection, month: str, county: str, path: Path) -> bool:
    """The county's marts of `month` into the provincial tables; False when the county has not run the month.

    Read through a read-only connection of its own (not ATTACH: the province writes inside one transaction)."""
    if not path.exists():
        return False
    with duckdb.connect(str(path), read_only=True) as source:
        try:
            frames = {table: source.sql(f"SELECT ? AS county, * FROM {mart} WHERE month = ? ORDER BY ALL",
                                        params=[county, month]).pl()
                      for table, mart in COUNTY_MARTS.items()}
        except duckdb.CatalogException:  # a warehouse from before the risk marts existed: not run for this month
            return False
    if frames["province.township_risk"].is_empty():
        return False
    for table, frame in frames.items():
        con.register("_county_mart", frame.to_arrow())
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _county_mart")
        finally:
            con.unregister("_county_mart")
    return True


def _county_rows(con: duckdb.DuckDBPyConnection, month: str, counties: list[str], ran: list[str]) -> None:
    """One province.county_risk row per county of the province, from the township rows just copied."""
    levels = ", ".join(f"count(*) FILTER (WHERE level = '{level}')::INTEGER AS townships_{level}" for level in LEVELS)
    level_columns = ", ".join(f"t.townships_{level}" for level in LEVELS)
    con.execute(f"""
        INSERT INTO province.county_risk
        SELECT ?, c.county, list_contains(?::VARCHAR[], c.county), t.townships, {level_columns},
               t.households, t.warned, CASE WHEN t.households > 0 THEN 1000.0 * t.warned / t.households END
        FROM (SELECT unnest(?::VARCHAR[]) AS county) AS c
        LEFT JOIN (
            SELECT county, count(*)::INTEGER AS townships, {levels},
                   sum(households) AS households, sum(warned_households) AS warned
            FROM province.township_risk WHERE month = ? GROUP BY county
        ) AS t USING (county)
        ORDER BY c.county""", [month, ran, counties, month])

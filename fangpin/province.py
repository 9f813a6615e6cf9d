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
from fangpin.warehouse import WarehouseDamaged, raise_if_damaged, warehouse_path
from pipelines.resources import COUNTIES_FOLDER, county_dir

COUNTY_MARTS = {"province.township_risk": "marts.township_risk", "province.village_risk": "marts.village_risk"}


def counties_found(province_dir: Path) -> list[str]:
    """Counties of the province: the folders under `counties/` that have a drop zone (`raw/`)."""
    folder = Path(province_dir) / COUNTIES_FOLDER
    return sorted(p.name for p in folder.iterdir() if (p / "raw").is_dir()) if folder.is_dir() else []


def month_bytes(province_dir: Path, month: str, counties: list[str]) -> dict[str, int]:
    """Each county's drop zone for the month, in bytes."""
    return {c: sum(f.stat().st_size for f in (county_dir(province_dir, c) / "raw" / month).rglob("*") if f.is_file())
            for c in counties}


def no_counties_message(province_dir: Path, month: str) -> str:
    """What a clerk is told when a province directory holds no county folders: where they belong."""
    return (f"{Path(province_dir) / COUNTIES_FOLDER}/ 下没有县的文件夹（counties/<县代码>/raw/{month}/），本月没有可运行的县。"
            " No county folders: nothing to run.")


def unknown_counties_message(province_dir: Path, unknown: list[str]) -> str:
    """What a clerk is told when `--counties` names counties that have no folder: which ones, and where they belong."""
    return (f"{Path(province_dir) / COUNTIES_FOLDER}/ 下没有这些县的文件夹：{'、'.join(unknown)}，请核对县代码。"
            f" No folder for these counties: {', '.join(unknown)}.")


def ensure_province_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Provincial tables are the county marts with a `county` column in front (the county DDL stays the one truth)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS province")
    for table, source in COUNTY_MARTS.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT ''::VARCHAR AS county, * FROM {source} LIMIT 0")
    level_columns = ", ".join(f"townships_{level} INTEGER" for level in LEVELS)
    con.execute(f"""CREATE TABLE IF NOT EXISTS province.county_risk (
        month VARCHAR NOT NULL, county VARCHAR NOT NULL, ran BOOLEAN NOT NULL, townships INTEGER,
        {level_columns}, households BIGINT, warned_households BIGINT, rate_per_1000 DOUBLE,
        left_out VARCHAR)""")  # why the county is not in this month's marts (its run failed, its file unreadable)
    con.execute("ALTER TABLE province.county_risk ADD COLUMN IF NOT EXISTS left_out VARCHAR")  # earlier provinces


FAILED_RUN_NOTE = "该县本月最近一次运行未成功，其数据未汇总（以免把上一次运行的结果当作本月的）；请查看该县的运行记录，处理后重新运行"


def build_province_marts(con: duckdb.DuckDBPyConnection, month: str, province_dir: Path,
                         failed: tuple[str, ...] = ()) -> dict[str, int]:
    """Replace `month` in the provincial marts from every county's warehouse (attached read-only). Counties in
    `failed` (their month's latest run failed: its warehouse may hold an earlier run's figures beside the failed
    run's) are left out, and province.county_risk says why."""
    check_month(month)
    ensure_province_schema(con)
    for table in (*COUNTY_MARTS, "province.county_risk"):
        con.execute(f"DELETE FROM {table} WHERE month = ?", [month])
    counties = counties_found(province_dir)
    files = {county: path for county in counties if county not in failed
             and (path := warehouse_path(county_dir(province_dir, county))).exists()}
    ran, unreadable = _copy_counties(con, month, files)
    _county_rows(con, month, counties, ran, {**{county: FAILED_RUN_NOTE for county in failed}, **unreadable})
    return {table: con.execute(f"SELECT count(*) FROM {table} WHERE month = ?", [month]).fetchone()[0]
            for table in (*COUNTY_MARTS, "province.county_risk")}


def _copy_counties(con: duckdb.DuckDBPyConnection, month: str, files: dict[str, Path]
                   ) -> tuple[list[str], dict[str, str]]:
    """Every county's marts of `month` into the provincial tables; returns the counties that have run the month
    (township rows for it), in order, and why each county whose warehouse cannot be read was left out (one damaged
    or held file must not stop the province's marts).

    The county files are attached read-only to a connection of their own (ATTACH shares one database instance:
    ~3 ms a county, where a connection per file took ~42 ms) and read by one query per mart; the province's
    connection, inside its transaction, receives the rows in one insert per table."""
    unreadable: dict[str, str] = {}
    with duckdb.connect() as source:
        aliases = {}
        for county, path in files.items():
            alias = f"county_{len(aliases)}"
            try:
                source.execute(f"ATTACH '{_sql_text(path)}' AS {alias} (READ_ONLY)")
            except duckdb.Error as error:
                unreadable[county] = _unreadable_county(path, error)
                continue
            aliases[county] = alias
        with_marts = _databases_with(source, COUNTY_MARTS.values())  # older warehouses: not run for this month
        readable = [county for county in aliases if aliases[county] in with_marts]
        if not readable:
            return [], unreadable
        rows = {table: _union(source, mart, month, {c: aliases[c] for c in readable})
                for table, mart in COUNTY_MARTS.items()}
    with_townships = set(rows["province.township_risk"]["county"].to_pylist())
    ran = [county for county in readable if county in with_townships]
    for table, arrow in rows.items():
        con.register("_county_marts", arrow)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _county_marts "
                        "WHERE list_contains(?::VARCHAR[], county)", [ran])
        finally:
            con.unregister("_county_marts")
    return ran, unreadable


def _unreadable_county(path: Path, error: duckdb.Error) -> str:
    """The clerk's words for a county warehouse the province could not attach."""
    try:
        raise_if_damaged(path, error)
    except WarehouseDamaged as damaged:
        return str(damaged)
    return f"县数据仓库 {path} 无法打开（可能正被其他程序占用），本次未汇总该县 — cannot be read: {error}"


def _sql_text(path: Path) -> str:
    """A path as the body of an SQL string literal (ATTACH takes no parameters)."""
    return str(path).replace("'", "''")


def _databases_with(con: duckdb.DuckDBPyConnection, tables) -> set[str]:
    """Attached databases holding every one of `tables` ("schema.table")."""
    wanted = list(tables)
    found = con.execute("SELECT database_name FROM duckdb_tables() WHERE list_contains(?::VARCHAR[], "
                        "schema_name || '.' || table_name) GROUP BY database_name HAVING count(*) = ?",
                        [wanted, len(wanted)]).fetchall()
    return {name for (name,) in found}


def _union(con: duckdb.DuckDBPyConnection, mart: str, month: str, aliases: dict[str, str]):
    """One mart's rows of `month` from every attached county, each with its county, as an Arrow table."""
    parts = " UNION ALL BY NAME ".join(f"SELECT ? AS county, * FROM {alias}.{mart} WHERE month = ?"
                                       for alias in aliases.values())
    params = [value for county in aliases for value in (county, month)]
    return con.sql(f"SELECT * FROM ({parts}) ORDER BY ALL", params=params).to_arrow_table()


def _county_rows(con: duckdb.DuckDBPyConnection, month: str, counties: list[str], ran: list[str],
                 left_out: dict[str, str]) -> None:
    """One province.county_risk row per county of the province, from the township rows just copied."""
    levels = ", ".join(f"count(*) FILTER (WHERE level = '{level}')::INTEGER AS townships_{level}" for level in LEVELS)
    level_columns = ", ".join(f"t.townships_{level}" for level in LEVELS)
    con.execute(f"""
        INSERT INTO province.county_risk
        SELECT ?, c.county, list_contains(?::VARCHAR[], c.county), t.townships, {level_columns},
               t.households, t.warned, CASE WHEN t.households > 0 THEN 1000.0 * t.warned / t.households END,
               map_extract(?::MAP(VARCHAR, VARCHAR), c.county)[1]
        FROM (SELECT unnest(?::VARCHAR[]) AS county) AS c
        LEFT JOIN (
            SELECT county, count(*)::INTEGER AS townships, {levels},
                   sum(households) AS households, sum(warned_households) AS warned
            FROM province.township_risk WHERE month = ? GROUP BY county
        ) AS t USING (county)
        ORDER BY c.county""", [month, ran, left_out, counties, month])

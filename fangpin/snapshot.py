"""The analysts' snapshot (分析快照): a separate, pseudonymised DuckDB file analysts can keep open.

Why a separate file: DuckDB lets one process write a database file, and an analyst's open session on the warehouse
blocks the monthly run. The snapshot is another file, so holding it open never blocks `fangpin run`; it is rebuilt
by `fangpin snapshot` (written to a temporary name, then renamed over the old one, so an analyst who still has the
old one open keeps reading it undisturbed).

Why pseudonymised: analysts count and link households; they never need to know who a person is. The snapshot holds
no resident ID number, name or phone number:
- ID numbers become a keyed pseudonym, HMAC-SHA256(county key, 18-character ID) as 16 hex characters. The key lives
  outside the warehouse and the project (env FANGPIN_PSEUDONYM_KEY, or the key file FANGPIN_KEY_FILE, default
  ~/.config/fangpin/key, mode 0600), so the same person has the same pseudonym in every month and every snapshot,
  and nobody holding only the snapshot can recompute a pseudonym from an ID number;
- household codes (户编号, the roster's household number) and case ids (which contain the household code) are
  pseudonymised too: a household code is looked up in the national monitoring system in seconds, so it identifies
  a family as well as an ID number does;
- names, phones, helper cadres (帮扶责任人), verifiers, raw JSON and disability certificate numbers are dropped;
- the birth date becomes an age group (0-15, 16-59, 60+: the policy's child/adult/elderly) and a 10-year band;
- free text that may quote people (reasons, notes, remarks, list details) is scrubbed: ID-like digit runs, phone
  numbers and every name known to the warehouse are replaced by ＊.
Sex, township, village, division code and all measures are kept. The snapshot is pseudonymised, not anonymous
(village + sex + age band + household size can single out a family), so it is still personal data: see SECURITY.md.

Only relations reviewed here are copied (`RELATIONS`); anything else another module adds to the warehouse is left
out and listed in `snapshot.omitted` until it is reviewed. `snapshot.columns` says what was done to each column.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from fangpin import warehouse
from fangpin.config import PROJECT_ROOT

KEY_ENV = "FANGPIN_PSEUDONYM_KEY"
KEY_FILE_ENV = "FANGPIN_KEY_FILE"
DEFAULT_KEY_FILE = Path("~/.config/fangpin/key")
MIN_KEY_CHARS = 16
SNAPSHOT_NAME = "analyst_snapshot.duckdb"
PSEUDONYM_CHARS = 16  # 64 bits: no collision in a county's lifetime of residents
MASK = "＊"

# Relations copied into the snapshot (everything else is omitted until reviewed). Views are copied as tables.
RELATIONS = (
    "roster.townships", "roster.villages", "roster.households", "roster.persons",
    "staging.list_rows", "raw.received_files", "raw.list_counts",
    "quarantine.rejected_rows", "quarantine.row_notes", "quality.results",
    "marts.person_links", "marts.unmatched_persons", "marts.warning_queue", "marts.case_status",
    "marts.township_risk", "marts.village_risk", "marts.township_risk_types", "marts.village_risk_types",
    "marts.submissions", "marts.submission_status_latest", "cases.verifications",
)

# Column rules, by column name wherever it appears.
PERSON_IDS = {"id_number": "person_pseudonym", "head_id_number": "head_pseudonym",
              "list_id_number": "list_person_pseudonym", "id_raw": "id_raw_pseudonym"}
PERSON_ID_LISTS = {"member_ids": "member_pseudonyms"}
KEYED_CODES = {"household_id": ("household_pseudonym", "household:"), "case_id": ("case_pseudonym", "case:")}
DROPPED = {"name", "head_name", "phone", "cadre", "verifier", "raw", "disability_cert"}
# Any other column whose name suggests a person's particulars is dropped too (defence against new columns).
PERSONAL_NAME_PATTERN = re.compile(r"(^|_)(name|names|phone|tel|mobile|contact|address|cert|birth)(_|$)")
NOT_PERSONAL = {"department_name", "column_name", "check_name"}  # names of things, not of people
KEPT_VERBATIM = {"sha256"}  # hex digests: a run of digits in them is not an ID
# Vocabulary and structure: only ID/phone scrubbing. Every other text column is also scrubbed of known names.
STRUCTURED_TEXT = {
    "month", "township", "village", "division_code", "township_code", "list_key", "department", "list", "kind",
    "source_file", "sheet", "folder", "lists", "status", "duplicate_of", "relation", "sex", "labour", "health",
    "household_type", "monitoring_category", "risk_types", "risk_details", "assurance_gaps", "sources", "findings",
    "action", "suggested_category", "case_status", "match_rule", "first_month", "last_month", "status_group",
    "result", "level", "reasons", "rising_types", "largest_cluster_village", "largest_cluster_event",
    "driving_villages", "risk_type", "fed_by", "department_name", "list_title", "arrival_source", "main_reasons",
    "suite", "check_name", "expectation", "column_name", "observed", "threshold", "description_zh", "examples",
    "reason_code", "note_code", "roster_month", "locations",
}
# Structure that quotes what departments and townships named: a file, sheet or folder may be named after the person
# it is about (梁志宇大病补报.csv, one sheet per household), so these are scrubbed of known names too.
NAMED_OUTSIDE = {"source_file", "sheet", "folder", "duplicate_of", "arrival_source", "examples", "description_zh",
                 "observed"}
# Where the warehouse keeps people's names: the dictionary for scrubbing free text.
NAME_SOURCES = (
    ("roster.persons", "name"), ("roster.households", "head_name"), ("roster.households", "cadre"),
    ("staging.list_rows", "name"), ("quarantine.rejected_rows", "name"), ("marts.unmatched_persons", "name"),
    ("marts.person_links", "name"), ("marts.warning_queue", "head_name"), ("marts.warning_queue", "cadre"),
    ("marts.case_status", "head_name"), ("marts.case_status", "verifier"), ("cases.verifications", "verifier"),
)
MIN_NAME_CHARS = 2  # a one-character "name" would wipe ordinary words

# Text scrubbing, in order (RE2 syntax, applied with regexp_replace(..., 'g')).
SCRUB_PATTERNS = (
    (r"[0-9]\.[0-9]{4,}[Ee]\+?[0-9]+", MASK),                        # an ID Excel turned into 3.62131E+17
    (r"[0-9０-９]{14,}[0-9０-９XxＸｘ]?", MASK),                        # IDs (15/17/18), household codes, accounts
    (r"(^|[^0-9])(\+?86[- ]?)?1[3-9][0-9][- ]?[0-9]{4}[- ]?[0-9]{4}([^0-9]|$)", r"\1" + MASK + r"\3"),  # mobiles
    (r"(^|[^0-9])(\(0[0-9]{2,3}\)|0[0-9]{2,3}-)[0-9]{7,8}([^0-9]|$)", r"\1" + MASK + r"\3"),  # landlines
    (r"(姓名[为是：:]?)“[^”]{1,12}”", r"\1“" + MASK + "”"),            # a quoted name in a reason sentence
)


class SnapshotError(ValueError):
    """A snapshot cannot be made as asked (no warehouse, bad output path); the message says why."""


class SecretError(ValueError):
    """A secret (pseudonym key, workbook passwords) is missing or kept unsafely; the message says what to do."""


@dataclass
class SnapshotResult:
    path: Path
    tables: dict[str, int] = field(default_factory=dict)  # relation -> rows
    omitted: list[str] = field(default_factory=list)      # warehouse relations not copied (not reviewed)
    months: list[str] = field(default_factory=list)
    key_fingerprint: str = ""


# ---------------------------------------------------------------------------------------------------------------
# The county key.

def key_file_path() -> Path:
    """FANGPIN_KEY_FILE, else ~/.config/fangpin/key."""
    return Path(os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE).expanduser().resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(Path(folder).resolve())


def check_outside(path: Path, data_dir: Path | None, what: str) -> None:
    """Refuse a secret (key, passwords) inside the project or the data dir: it would be copied, committed or
    backed up along with the data it protects."""
    places = [(PROJECT_ROOT, "项目目录 project"), *([(Path(data_dir), "数据目录 data dir")] if data_dir else [])]
    for folder, label in places:
        if _inside(path, folder):
            raise SecretError(
                f"{what} {path} 位于{label} {Path(folder).resolve()} 之内，不安全；请放到项目和数据目录之外"
                f"（如 ~/.config/fangpin/）。 It must live outside the project and the data dir.")


def check_private(path: Path, what: str) -> None:
    """Refuse a secret file that other users can read (like ssh does with private keys)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{what} {path} 的权限为 {stat.filemode(mode)}，其他用户可读；请执行 chmod 600 {path}。"
                            f" It must be readable by its owner only (chmod 600).")


def load_key(data_dir: Path | None = None) -> bytes:
    """The county pseudonym key: FANGPIN_PSEUDONYM_KEY, else the key file (owner-only, outside project and data)."""
    text = os.environ.get(KEY_ENV, "").strip()
    source = f"环境变量 {KEY_ENV}"
    if not text:
        path = key_file_path()
        if not path.exists():
            raise SecretError(
                f"没有找到化名密钥（{KEY_ENV} 未设置，密钥文件 {path} 不存在），无法生成分析快照。"
                f"请运行 `fangpin snapshot --new-key` 在 {path} 生成密钥（项目和数据目录之外，仅本人可读），"
                f"并妥善备份：换了密钥，同一人在新旧快照中的化名就对不上了。"
                f" No pseudonym key: run `fangpin snapshot --new-key` to create one at {path}.")
        check_outside(path, data_dir, "密钥文件 key file")
        check_private(path, "密钥文件 key file")
        text = path.read_text(encoding="utf-8").strip()
        source = f"密钥文件 {path}"
    if len(text) < MIN_KEY_CHARS:
        raise SecretError(f"{source} 中的密钥太短（至少 {MIN_KEY_CHARS} 个字符）。 The key is too short.")
    return text.encode("utf-8")


def create_key(path: Path | None = None, data_dir: Path | None = None) -> Path:
    """A new random key (256 bits, hex) at `path` (default `key_file_path()`), mode 0600 in a 0700 folder.

    Never overwrites: a new key would give everybody new pseudonyms and break linkage with earlier snapshots.
    """
    path = Path(path or key_file_path()).expanduser().resolve()
    check_outside(path, data_dir, "密钥文件 key file")
    if path.exists():
        raise SecretError(f"密钥文件 {path} 已存在，不会覆盖（覆盖会使新旧快照的化名无法对应）。"
                            f" The key file {path} exists and is not overwritten.")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


def pseudonym(key: bytes, value: str) -> str:
    """The reference definition: HMAC-SHA256(key, value) as the first 16 hex characters (the SQL must agree)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_CHARS]


def key_fingerprint(key: bytes) -> str:
    """Which key made a snapshot, without revealing it: snapshots with different fingerprints do not link."""
    return pseudonym(key, "fangpin-key-fingerprint")[:8]


def _hmac_pads(key: bytes) -> tuple[str, str]:
    """HMAC's inner and outer padded keys (RFC 2104) as hex, so DuckDB's sha256 can compute HMAC in SQL."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key).hex(), bytes(b ^ 0x5C for b in key).hex()


def _define_macros(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """TEMP macros (never stored in the snapshot file): fp_pseudonym(text, domain), fp_scrub(text)."""
    inner, outer = _hmac_pads(key)
    con.execute(f"""
        CREATE OR REPLACE TEMP MACRO fp_pseudonym(value, domain) AS
        CASE WHEN value IS NULL OR trim(CAST(value AS VARCHAR)) = '' THEN NULL ELSE
            left(sha256(from_hex('{outer}') ||
                        unhex(sha256(from_hex('{inner}') || encode(domain || upper(trim(CAST(value AS VARCHAR))))))),
                 {PSEUDONYM_CHARS})
        END""")
    scrub = "value"
    for pattern, replacement in SCRUB_PATTERNS:
        scrub = f"regexp_replace({scrub}, {_literal(pattern)}, {_literal(replacement)}, 'g')"
    con.execute(f"CREATE OR REPLACE TEMP MACRO fp_scrub(value) AS {scrub}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------------------------
# Column rules.

def _is_text(data_type: str) -> bool:
    return data_type == "VARCHAR"


def _is_text_list(data_type: str) -> bool:
    return data_type == "VARCHAR[]"


def _holds_text(data_type: str) -> bool:
    return "VARCHAR" in data_type


def _safe_nested(data_type: str) -> bool:
    """MAP(VARCHAR, number): count maps keyed by vocabulary (risk types, reason codes)."""
    return bool(re.fullmatch(r"MAP\(VARCHAR, (INTEGER|BIGINT|DOUBLE)\)", data_type))


def column_rule(column: str, data_type: str, has_month: bool) -> list[tuple[str, str, str]]:
    """[(snapshot column, SQL expression over the source column, treatment)] for one source column; [] drops it."""
    quoted = f'"{column}"'
    if column in PERSON_IDS:
        return [(PERSON_IDS[column], f"fp_pseudonym({quoted}, '')", "pseudonym (HMAC of the ID number)")]
    if column in PERSON_ID_LISTS:
        return [(PERSON_ID_LISTS[column], f"list_transform({quoted}, lambda x: fp_pseudonym(x, ''))",
                 "pseudonym per element")]
    if column in KEYED_CODES:
        name, domain = KEYED_CODES[column]
        return [(name, f"fp_pseudonym({quoted}, '{domain}')", f"pseudonym (HMAC of '{domain}' + code)")]
    if column == "birth_date":
        reference = ("last_day(CAST(strptime(month || '-01', '%Y-%m-%d') AS DATE))" if has_month else "current_date")
        age = f"date_sub('year', {quoted}, {reference})"
        return [
            ("age_group", f"CASE WHEN {age} < 16 THEN '0-15' WHEN {age} < 60 THEN '16-59' "
                          f"WHEN {age} >= 60 THEN '60+' END", "age at month end: 0-15 / 16-59 / 60+"),
            ("age_band", f"CASE WHEN {age} >= 80 THEN '80+' WHEN {age} >= 0 THEN "
                         f"CAST({age} // 10 * 10 AS VARCHAR) || '-' || CAST({age} // 10 * 10 + 9 AS VARCHAR) END",
             "age at month end in 10-year bands"),
        ]
    if column == "members" and _is_text_list(data_type):
        return [("member_triggers", f"list_transform({quoted}, lambda x: fp_scrub(regexp_replace(x, '^[^（(]*', '')))",
                 "name removed: （list：risk） per member")]
    if column in DROPPED or (PERSONAL_NAME_PATTERN.search(column) and column not in NOT_PERSONAL):
        return []
    if column in KEPT_VERBATIM or not _holds_text(data_type) or _safe_nested(data_type):
        return [(column, quoted, "kept")]
    if _is_text(data_type):
        return [(column, f"fp_scrub({quoted})", "kept, ID/phone scrubbed")]
    if _is_text_list(data_type):
        return [(column, f"list_transform({quoted}, lambda x: fp_scrub(x))", "kept, ID/phone scrubbed per element")]
    return []  # other nested types holding text: not reviewed, dropped


def needs_name_scrub(column: str, data_type: str) -> bool:
    """Free text that may quote a person's name (reasons, notes, remarks, details), any unreviewed text, and the
    file, sheet and folder names departments and townships chose (`NAMED_OUTSIDE`)."""
    free = column not in STRUCTURED_TEXT or column in NAMED_OUTSIDE
    return (_is_text(data_type) or _is_text_list(data_type)) and free and column not in KEPT_VERBATIM


# ---------------------------------------------------------------------------------------------------------------
# Building.

def snapshot_path(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "warehouse" / SNAPSHOT_NAME


@contextmanager
def _private_umask() -> Iterator[None]:
    """Files created meanwhile (the snapshot, its WAL) are owner-only from their first byte."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _attach_warehouse(con: duckdb.DuckDBPyConnection, path: Path, wait_seconds: float) -> None:
    """ATTACH the warehouse read-only, waiting a bounded time while a run writes it (then say who holds it)."""
    started = time.monotonic()
    while True:
        try:
            con.execute(f"ATTACH {_literal(str(path))} AS wh (READ_ONLY)")
            return
        except duckdb.IOException as error:
            warehouse.raise_if_damaged(path, error)
            if "lock" not in str(error).lower():
                raise
            waited = time.monotonic() - started
            if waited >= wait_seconds:
                raise warehouse.WarehouseBusy(
                    warehouse.busy_message(path, warehouse._holder_description(str(error)), waited)) from error
            time.sleep(0.5)


def _source_relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = 'wh' "
        "UNION SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE database_name = 'wh' "
        "AND NOT internal").fetchall()
    return sorted(r[0] for r in rows)


def _source_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    schema, name = relation.split(".")
    return con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'wh' AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()


def _name_dictionary(con: duckdb.DuckDBPyConnection, relations: set[str]) -> list[str]:
    """Every distinct person name the warehouse holds (2+ characters), longest first (so 张三丰 wins over 张三)."""
    parts = []
    for relation, column in NAME_SOURCES:
        if relation in relations and column in dict(_source_columns(con, relation)):
            parts.append(f'SELECT trim("{column}") AS name FROM wh.{relation}')
    if not parts:
        return []
    names = con.sql(f"SELECT DISTINCT name FROM ({' UNION ALL '.join(parts)}) "
                    f"WHERE length(name) >= {MIN_NAME_CHARS}").pl().get_column("name")
    return sorted(names.to_list(), key=lambda n: (-len(n), n))


def _copy_relation(con: duckdb.DuckDBPyConnection, catalog: str, relation: str) -> list[dict]:
    """CREATE TABLE <snapshot>.<relation> from the warehouse's, column by column; returns the column log."""
    columns = _source_columns(con, relation)
    has_month = any(c == "month" for c, _ in columns)
    select, log = [], []
    for column, data_type in columns:
        rules = column_rule(column, data_type, has_month)
        if not rules:
            log.append({"relation": relation, "source_column": column, "column": None, "treatment": "dropped"})
        for name, expression, treatment in rules:
            select.append(f'{expression} AS "{name}"')
            log.append({"relation": relation, "source_column": column, "column": name, "treatment": treatment,
                        "name_scrub": needs_name_scrub(column, data_type) and name in (column, "member_triggers")})
    schema, _ = relation.split(".")
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog}".{schema}')
    con.execute(f'CREATE TABLE "{catalog}".{relation} AS SELECT {", ".join(select)} FROM wh.{relation}')
    return log


def _scrub_names(con: duckdb.DuckDBPyConnection, catalog: str, names: list[str], targets: list[tuple[str, str, bool]]
                 ) -> None:
    """Replace known names in free-text columns: distinct texts through one Aho-Corasick pass (Polars
    `replace_many`), then UPDATE by lookup, so the cost is per distinct text, not per row."""
    if not names or not targets:
        return
    parts = []
    for relation, column, is_list in targets:  # per-column loop: a handful of free-text columns
        value = f'unnest("{column}")' if is_list else f'"{column}"'
        parts.append(f'SELECT DISTINCT {value} AS original FROM "{catalog}".{relation}')
    texts = con.sql(f"SELECT DISTINCT original FROM ({' UNION ALL '.join(parts)}) WHERE original IS NOT NULL").pl()
    mapping = texts.with_columns(
        pl.col("original").str.replace_many(names, [MASK * 2] * len(names), leftmost=True).alias("scrubbed")
    ).filter(pl.col("original") != pl.col("scrubbed"))
    if mapping.is_empty():
        return
    con.register("_fp_names", warehouse.as_arrow(mapping))
    try:
        for relation, column, is_list in targets:
            target = f'"{catalog}".{relation}'
            if is_list:
                con.execute(f'UPDATE {target} SET "{column}" = list_transform("{column}", '
                            f'lambda x: coalesce(m.lookup[x], x)) FROM (SELECT map_from_entries('
                            f'list({{key: original, value: scrubbed}})) AS lookup FROM _fp_names) AS m')
            else:
                con.execute(f'UPDATE {target} SET "{column}" = m.scrubbed FROM _fp_names AS m '
                            f'WHERE {target}."{column}" = m.original')
    finally:
        con.unregister("_fp_names")


def _write_info(con: duckdb.DuckDBPyConnection, catalog: str, result: SnapshotResult, source: Path,
                log: list[dict]) -> None:
    """snapshot.info (what, when, which key), snapshot.columns (what was done to each column), snapshot.omitted."""
    con.execute(f'CREATE SCHEMA "{catalog}".snapshot')
    info = pl.DataFrame({
        "item": ["created_at", "source", "months", "key_fingerprint", "pseudonym", "note"],
        "value": [datetime.now(timezone.utc).isoformat(timespec="seconds"), str(source), ",".join(result.months),
                  result.key_fingerprint,
                  f"HMAC-SHA256(county key, ID number) first {PSEUDONYM_CHARS} hex; households and cases: "
                  f"HMAC of 'household:'/'case:' + code",
                  "pseudonymised, not anonymous: personal data, see SECURITY.md"],
    })
    columns = pl.DataFrame(log, schema={"relation": pl.String, "source_column": pl.String, "column": pl.String,
                                        "treatment": pl.String, "name_scrub": pl.Boolean})
    columns = columns.with_columns(
        pl.when(pl.col("name_scrub").fill_null(False))
        .then(pl.col("treatment") + ", names scrubbed").otherwise(pl.col("treatment")).alias("treatment")
    ).drop("name_scrub")
    omitted = pl.DataFrame({"relation": result.omitted}, schema={"relation": pl.String}).with_columns(
        pl.lit("not reviewed for personal data: not copied").alias("why"))
    for name, frame in (("info", info), ("columns", columns), ("omitted", omitted)):
        con.register("_fp_frame", warehouse.as_arrow(frame))
        con.execute(f'CREATE TABLE "{catalog}".snapshot.{name} AS SELECT * FROM _fp_frame')
        con.unregister("_fp_frame")


def _months(con: duckdb.DuckDBPyConnection, catalog: str, copied: list[str]) -> list[str]:
    parts = [f'SELECT DISTINCT month FROM "{catalog}".{r}' for r in ("roster.persons", "marts.warning_queue")
             if r in copied]
    if not parts:
        return []
    return [r[0] for r in con.execute(f"SELECT DISTINCT month FROM ({' UNION '.join(parts)}) ORDER BY 1").fetchall()]


def _remove(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def build_snapshot(data_dir: Path, out: Path | None = None, key: bytes | None = None,
                   wait_seconds: float | None = None, audit: bool = True) -> SnapshotResult:
    """Write the analysts' snapshot of the warehouse in `data_dir` to `out` (default DIR/warehouse/
    analyst_snapshot.duckdb): temporary name, owner-only (0600), audited in audit.exports, then renamed into place.
    """
    data_dir = Path(data_dir).resolve()
    key = key if key is not None else load_key(data_dir)
    source = warehouse.warehouse_path(data_dir)
    if not source.exists():
        raise SnapshotError(f"没有找到数据仓库 {source}，请先运行 `fangpin run --month YYYY-MM`。"
                            f" No warehouse at {source}: run a month first.")
    out = Path(out).expanduser().resolve() if out else snapshot_path(data_dir)
    if out == source.resolve():
        raise SnapshotError("快照不能覆盖数据仓库本身。 The snapshot cannot overwrite the warehouse.")
    wait = warehouse.lock_wait_seconds() if wait_seconds is None else wait_seconds
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    result = SnapshotResult(path=out, key_fingerprint=key_fingerprint(key))
    with _private_umask():
        out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove(temporary)
        try:
            _write_snapshot(temporary, source, key, wait, result)
            os.chmod(temporary, 0o600)
            if audit:
                record_export(data_dir, out, result)
            os.replace(temporary, out)
        except BaseException:
            _remove(temporary)
            raise
    return result


def _write_snapshot(temporary: Path, source: Path, key: bytes, wait: float, result: SnapshotResult) -> None:
    con = duckdb.connect(str(temporary))
    try:
        catalog = con.execute("SELECT current_database()").fetchone()[0]
        _define_macros(con, key)
        _attach_warehouse(con, source, wait)
        available = _source_relations(con)
        copied = [r for r in RELATIONS if r in available]
        result.omitted = [r for r in available if r not in RELATIONS and not r.startswith("audit.")]
        names = _name_dictionary(con, set(available))
        log: list[dict] = []
        for relation in copied:  # per-relation loop: a fixed, short list
            log.extend(_copy_relation(con, catalog, relation))
        targets = [(e["relation"], e["column"], dtype.endswith("[]"))
                   for e in log if e.get("name_scrub")
                   for column, dtype in _source_columns(con, e["relation"]) if column == e["source_column"]]
        _scrub_names(con, catalog, names, targets)
        con.execute("DETACH wh")
        result.tables = {r: con.execute(f'SELECT count(*) FROM "{catalog}".{r}').fetchone()[0] for r in copied}
        result.months = _months(con, catalog, copied)
        _write_info(con, catalog, result, source, log)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def record_export(data_dir: Path, path: Path, result: SnapshotResult) -> None:
    """One audit.exports row for the snapshot (kind analyst_snapshot): personal data leaves the warehouse here too."""
    households = 0
    with warehouse.writer(data_dir) as con, warehouse.transaction(con):
        if "roster.households" in result.tables:
            households = con.execute("SELECT count(DISTINCT household_id) FROM roster.households").fetchone()[0]
        con.execute(
            "INSERT INTO audit.exports (exported_at, month, township, path, households, os_user, encrypted, kind) "
            "VALUES (?, ?, NULL, ?, ?, ?, false, 'analyst_snapshot')",
            [datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0),
             result.months[-1] if result.months else "", str(path), households, getpass.getuser()])

"""The analysts' snapshot on a small hand-made warehouse: pseudonyms (stable across months, key-dependent, equal to
Python's HMAC), nothing identifying left in any text column, age bands, unreviewed tables left out, owner-only file,
the key's handling, and that an open snapshot does not block the warehouse's writer (an open warehouse does)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from fangpin import cli, snapshot, warehouse
from fangpin.config import PROJECT_ROOT
from fangpin.demo import check_char

KEY = b"test-county-key-0123456789"
OTHER_KEY = b"another-county-key-987654321"


def _id(first17: str) -> str:
    return first17 + check_char(first17)


HEAD = _id("36213119660315001")     # born 1966-03-15, 60 at the end of 2026-09
CHILD = _id("36213120101015002")    # born 2010-10-15, 15 at the end of 2026-09, 16 at the end of 2026-10
STRANGER = _id("43012119800101003")  # on a list, not in the roster
HOUSEHOLD = "3607991022020017"
NAMES = {"欧阳明华": HEAD, "张伟": CHILD}
PHONES = ["13912345678", "0797-6543210"]


def _insert(con, table: str, row: dict) -> None:
    columns = ", ".join(row)
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def build_warehouse(data_dir: Path) -> None:
    """Two months of one household (head and child), a warned household, an unmatched stranger, a rejected row,
    and one table snapshot.py has never reviewed."""
    with warehouse.writer(data_dir, wait_seconds=5) as con:
        for month in ("2026-09", "2026-10"):
            for name, id_number in NAMES.items():
                _insert(con, "roster.persons", {
                    "month": month, "household_id": HOUSEHOLD, "id_number": id_number, "name": name,
                    "relation": "户主" if id_number == HEAD else "之子", "is_head": id_number == HEAD,
                    "sex": "男", "birth_date": date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])),
                    "township": "石城镇", "village": "黄坪村", "phone": PHONES[0],
                    "source_file": f"raw/{month}/roster/花名册.xlsx", "sheet": "Sheet1", "row_number": 3})
            _insert(con, "roster.households", {
                "month": month, "household_id": HOUSEHOLD, "township": "石城镇", "village": "黄坪村",
                "head_name": "欧阳明华", "head_id_number": HEAD, "household_size": 2, "members": 2,
                "cadre": "李干部", "phone": PHONES[1]})
            _insert(con, "marts.warning_queue", {
                "month": month, "household_id": HOUSEHOLD, "township": "石城镇", "village": "黄坪村",
                "head_name": "欧阳明华", "head_id_number": HEAD, "members": ["张伟（civil_affairs.dibao：因病）"],
                "member_ids": [CHILD], "risk_types": ["因病"], "sources": ["civil_affairs.dibao"],
                "priority_reasons": f"成员患大病：张伟；户主欧阳明华（60岁），联系电话{PHONES[0]}",
                "case_id": f"YJ2026-09-{HOUSEHOLD}", "cadre": "李干部", "phone": PHONES[0], "priority": 80.0})
        _insert(con, "staging.list_rows", {
            "month": "2026-10", "list_key": "civil_affairs.dibao", "department": "civil_affairs",
            "source_file": "raw/2026-10/民政局/低保.xlsx", "sheet": "低保", "row_number": 4, "id_number": CHILD,
            "name": "张伟", "township": "石城镇", "detail": f"张伟住院，身份证{CHILD}，电话 139 1234 5678",
            "disability_cert": CHILD + "21", "raw": f'{{"姓名": "张伟", "身份证号码": "{CHILD}"}}'})
        _insert(con, "marts.unmatched_persons", {
            "month": "2026-10", "id_number": STRANGER, "id_valid": True, "name": "王佳",
            "sources": ["health.major_disease"], "township": "石城镇", "details": ["health.major_disease：王佳肺癌"],
            "reason": f"身份证号码{STRANGER}在花名册中找不到；石城镇花名册中没有姓名为“王佳”的人"})
        _insert(con, "quarantine.rejected_rows", {
            "month": "2026-10", "source_file": "raw/2026-10/卫健委/大病.csv", "row_number": 5,
            "reason_code": "id_float_mangled", "reason": "身份证号码被Excel存成了数字（显示为“3.62131196904284E+17”）",
            "id_raw": "3.62131196904284E+17", "name": "王佳", "raw": '{"姓名": "王佳"}'})
        _insert(con, "raw.received_files", {  # departments name files, sheets and folders after the person
            "month": "2026-10", "source_file": "raw/2026-10/卫健委/张伟/欧阳明华（362131）大病补报.csv",
            "folder": "卫健委", "status": "duplicate",
            "duplicate_of": "raw/2026-10/卫健委/欧阳明华大病申请.csv"})
        _insert(con, "quarantine.row_notes", {
            "month": "2026-10", "source_file": "raw/2026-10/民政局/低保.xlsx", "sheet": "张伟户", "row_number": 6,
            "list_key": "civil_affairs.dibao", "column_name": "金额", "note_code": "amount_unparsed", "note": "…"})
        con.execute("CREATE TABLE IF NOT EXISTS marts.unreviewed (month VARCHAR, person VARCHAR)")
        con.execute("INSERT INTO marts.unreviewed VALUES ('2026-10', '欧阳明华')")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(snapshot.KEY_ENV, raising=False)
    monkeypatch.setenv(snapshot.KEY_FILE_ENV, str(tmp_path / "keys" / "key"))
    directory = tmp_path / "data"
    build_warehouse(directory)
    return directory


def text_values(path: Path) -> list[tuple[str, str, str]]:
    """(relation, column, text) of every VARCHAR cell and every element of every VARCHAR[] cell of the file."""
    values = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute("SELECT schema_name || '.' || table_name, column_name, data_type FROM duckdb_columns() "
                              "WHERE data_type IN ('VARCHAR', 'VARCHAR[]')").fetchall()
        for relation, column, data_type in columns:
            select = f'unnest("{column}")' if data_type == "VARCHAR[]" else f'"{column}"'
            for (text,) in con.execute(f"SELECT {select} FROM {relation}").fetchall():
                if text is not None:
                    values.append((relation, column, text))
    return values


def test_no_id_name_or_phone_anywhere(data_dir):
    result = snapshot.build_snapshot(data_dir, key=KEY)
    values = text_values(result.path)
    assert len(values) > 50
    digits = [re.sub(r"[\s-]", "", text) for _, _, text in values]
    assert not [v for v in values if re.search(r"[0-9]{17}[0-9Xx]", v[2])]
    assert not [v for v in values if any(i in v[2] for i in (HEAD, CHILD, STRANGER, HOUSEHOLD, "3.62131196904284"))]
    assert not [v for v in values if any(n in v[2] for n in (*NAMES, "王佳", "李干部"))]
    assert not [d for d in digits if any(p.replace("-", "") in d for p in PHONES)]
    with duckdb.connect(str(result.path), read_only=True) as con:
        reasons = con.execute("SELECT priority_reasons FROM marts.warning_queue").fetchall()
        triggers = con.execute("SELECT member_triggers FROM marts.warning_queue LIMIT 1").fetchone()[0]
    assert reasons[0][0].startswith("成员患大病：＊＊；户主＊＊（60岁）")  # the sentence survives, the names do not
    assert triggers == ["（civil_affairs.dibao：因病）"]


def test_same_person_same_pseudonym_across_months_and_equal_to_hmac(data_dir):
    result = snapshot.build_snapshot(data_dir, key=KEY)
    with duckdb.connect(str(result.path), read_only=True) as con:
        by_month = con.execute("SELECT month, person_pseudonym FROM roster.persons WHERE relation = '户主' "
                               "ORDER BY month").fetchall()
        head = con.execute("SELECT DISTINCT head_pseudonym FROM marts.warning_queue").fetchall()
        members = con.execute("SELECT DISTINCT member_pseudonyms FROM marts.warning_queue").fetchall()
        households = con.execute("SELECT DISTINCT household_pseudonym FROM roster.households").fetchall()
        listed = con.execute("SELECT person_pseudonym FROM staging.list_rows").fetchall()
    assert [m for m, _ in by_month] == ["2026-09", "2026-10"]
    assert {p for _, p in by_month} == {snapshot.pseudonym(KEY, HEAD)} == {h for (h,) in head}
    assert members == [([snapshot.pseudonym(KEY, CHILD)],)] and listed == [(snapshot.pseudonym(KEY, CHILD),)]
    assert households == [(snapshot.pseudonym(KEY, "household:" + HOUSEHOLD),)]
    assert len(snapshot.pseudonym(KEY, HEAD)) == 16


def test_another_key_gives_other_pseudonyms(data_dir, tmp_path):
    first = snapshot.build_snapshot(data_dir, out=tmp_path / "a.duckdb", key=KEY)
    second = snapshot.build_snapshot(data_dir, out=tmp_path / "b.duckdb", key=OTHER_KEY)
    query = "SELECT DISTINCT person_pseudonym FROM roster.persons ORDER BY 1"
    with duckdb.connect(str(first.path), read_only=True) as a, duckdb.connect(str(second.path), read_only=True) as b:
        ours, theirs = a.execute(query).fetchall(), b.execute(query).fetchall()
    assert len(ours) == len(theirs) == 2 and not set(ours) & set(theirs)
    assert first.key_fingerprint != second.key_fingerprint


def test_a_long_key_is_hashed_as_hmac_requires(data_dir, tmp_path):
    long_key = b"k" * 100
    result = snapshot.build_snapshot(data_dir, out=tmp_path / "long.duckdb", key=long_key)
    with duckdb.connect(str(result.path), read_only=True) as con:
        pseudonyms = {p for (p,) in con.execute("SELECT person_pseudonym FROM roster.persons").fetchall()}
    assert pseudonyms == {snapshot.pseudonym(long_key, HEAD), snapshot.pseudonym(long_key, CHILD)}


def test_ages_become_bands_at_the_end_of_each_month(data_dir):
    result = snapshot.build_snapshot(data_dir, key=KEY)
    with duckdb.connect(str(result.path), read_only=True) as con:
        rows = con.execute("SELECT month, relation, age_group, age_band FROM roster.persons ORDER BY ALL").fetchall()
        columns = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'persons'"
                                             ).fetchall()}
    assert ("2026-09", "之子", "0-15", "10-19") in rows and ("2026-10", "之子", "16-59", "10-19") in rows
    assert ("2026-09", "户主", "60+", "60-69") in rows
    assert not columns & {"birth_date", "name", "phone", "id_number", "household_id"}
    assert {"sex", "township", "village", "age_group", "age_band", "person_pseudonym"} <= columns


def test_unreviewed_tables_are_left_out_and_listed(data_dir):
    result = snapshot.build_snapshot(data_dir, key=KEY)
    assert "marts.unreviewed" in result.omitted and "marts.unreviewed" not in result.tables
    with duckdb.connect(str(result.path), read_only=True) as con:
        omitted = con.execute("SELECT relation FROM snapshot.omitted").fetchall()
        dropped = con.execute("SELECT source_column FROM snapshot.columns WHERE relation = 'staging.list_rows' "
                              "AND treatment = 'dropped' ORDER BY 1").fetchall()
        tables = {t for (t,) in con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
    assert omitted == [("marts.unreviewed",)]
    assert dropped == [("disability_cert",), ("name",), ("raw",)]
    assert "audit.exports" not in tables and "marts.unreviewed" not in tables


def test_file_is_owner_only_written_atomically_and_audited(data_dir):
    first = snapshot.build_snapshot(data_dir, key=KEY)
    old = duckdb.connect(str(first.path), read_only=True)  # an analyst keeps the old snapshot open
    second = snapshot.build_snapshot(data_dir, key=KEY)     # the rebuild replaces it underneath
    assert old.execute("SELECT count(*) FROM roster.persons").fetchone()[0] == 4
    old.close()
    assert second.path == snapshot.snapshot_path(data_dir)
    assert os.stat(second.path).st_mode & 0o777 == 0o600
    assert [p.name for p in second.path.parent.iterdir() if ".tmp" in p.name] == []
    with warehouse.reader(data_dir, wait_seconds=5) as con:
        audit = con.execute("SELECT kind, township, path, households, os_user, month FROM audit.exports").fetchall()
    assert len(audit) == 2 and audit[0][:4] == ("analyst_snapshot", None, str(second.path), 1)
    assert audit[0][4] and audit[0][5] == "2026-10"


def test_cli_refuses_without_a_key_and_creates_one_outside_the_data(data_dir, tmp_path, capsys):
    assert cli.main(["snapshot", "--data-dir", str(data_dir)]) == 2
    assert "--new-key" in capsys.readouterr().err
    assert not snapshot.snapshot_path(data_dir).exists()
    assert cli.main(["snapshot", "--data-dir", str(data_dir), "--new-key"]) == 0
    key_file = tmp_path / "keys" / "key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600 and os.stat(key_file.parent).st_mode & 0o777 == 0o700
    assert "analyst snapshot:" in capsys.readouterr().out and snapshot.snapshot_path(data_dir).exists()
    with pytest.raises(snapshot.SecretError, match="已存在"):
        snapshot.create_key(data_dir=data_dir)  # never overwrites: pseudonyms would stop linking
    for inside in (data_dir / "key", PROJECT_ROOT / "config" / "key"):
        with pytest.raises(snapshot.SecretError, match="之内"):
            snapshot.create_key(inside, data_dir=data_dir)
        assert not inside.exists()


def test_unsafe_or_short_keys_are_refused(data_dir, tmp_path, monkeypatch):
    key_file = tmp_path / "keys" / "key"
    key_file.parent.mkdir()
    key_file.write_text("0123456789abcdef0123\n")
    key_file.chmod(0o644)
    with pytest.raises(snapshot.SecretError, match="chmod 600"):
        snapshot.load_key(data_dir)
    key_file.chmod(0o600)
    assert snapshot.load_key(data_dir) == b"0123456789abcdef0123"
    monkeypatch.setenv(snapshot.KEY_ENV, "short")
    with pytest.raises(snapshot.SecretError, match="太短"):
        snapshot.load_key(data_dir)
    monkeypatch.setenv(snapshot.KEY_ENV, "an-environment-key-of-some-length")
    assert snapshot.load_key(data_dir) == b"an-environment-key-of-some-length"


def _hold_open(path: Path) -> subprocess.Popen:
    """Another process (an analyst) holding `path` open read-only until killed."""
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
            "c.execute('SELECT 1').fetchall(); print('open', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_an_open_snapshot_does_not_block_the_writer_an_open_warehouse_does(data_dir):
    result = snapshot.build_snapshot(data_dir, key=KEY)
    holder = _hold_open(result.path)
    try:
        started = time.monotonic()
        with warehouse.writer(data_dir, wait_seconds=2) as con:
            con.execute("INSERT INTO roster.townships (month, township) VALUES ('2026-11', '石城镇')")
        assert time.monotonic() - started < 2
    finally:
        holder.kill()
        holder.wait()
    holder = _hold_open(warehouse.warehouse_path(data_dir))
    try:
        with pytest.raises(warehouse.WarehouseBusy):
            with warehouse.writer(data_dir, wait_seconds=1):
                pass
    finally:
        holder.kill()
        holder.wait()

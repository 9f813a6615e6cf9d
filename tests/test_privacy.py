"""Personal data on a small demo county run through the CLI (one month, like tests/test_end_to_end.py): every
township's workbook holds only its own households and persons (every cell of every sheet), encrypted workbooks open
only with their password, exports and warehouse are owner-only, every workbook is audited, and the analysts'
snapshot holds no ID, roster name or phone while an analyst keeping it open does not block the run.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import msoffcrypto
import openpyxl
import polars as pl
import pytest
from openpyxl.utils.exceptions import InvalidFileException

from fangpin import protect, snapshot, warehouse
from fangpin.config import PROJECT_ROOT
from fangpin.demo import STREET_STEM, TOWNSHIP_STEMS
from test_snapshot import text_values

MONTH = "2026-10"
PERSONS = 2000
KEY = "privacy-test-county-key-0123456789"
ID_TOKEN = re.compile(r"[0-9]{17}[0-9X]")
CODE_TOKEN = re.compile(r"[0-9]{14,}[0-9X]?")  # IDs and 16-digit household codes alike
DIGEST = re.compile(r"[0-9a-f]{32}")


def _passwords() -> dict[str, str]:
    """One password per township name the demo can draw (the county's passwords file covers all its townships)."""
    names = [STREET_STEM + "街道"] + [stem + suffix for stem in TOWNSHIP_STEMS for suffix in ("镇", "乡")]
    return {name: f"密码-{index:02d}-{name}" for index, name in enumerate(names)}


def _env(data_dir: Path, home: Path, secrets: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "FANGPIN_DATA_DIR": str(data_dir), "FANGPIN_LOCK_WAIT": "30",
            snapshot.KEY_ENV: KEY, protect.PASSWORDS_ENV: str(secrets / "passwords.json")}


def _hold_open(path: Path) -> subprocess.Popen:
    """An analyst's process holding `path` open read-only until killed."""
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
            "c.execute('SELECT 1').fetchall(); print('open', flush=True); time.sleep(300)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """Demo month run by the CLI while an analyst holds a snapshot open; then the snapshot rebuilt from the run."""
    from fangpin import demo

    root = tmp_path_factory.mktemp("privacy")
    data_dir, home, secrets = root / "data", root / "dagster_home", root / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "passwords.json").write_text(json.dumps(_passwords(), ensure_ascii=False), encoding="utf-8")
    (secrets / "passwords.json").chmod(0o600)
    demo.generate(data_dir, months=[MONTH], persons=PERSONS)
    with warehouse.writer(data_dir, wait_seconds=5):
        pass  # an empty warehouse, so that a first snapshot exists before the run
    first = snapshot.build_snapshot(data_dir, key=KEY.encode())
    holder = _hold_open(first.path)
    try:
        run = subprocess.run([sys.executable, "-m", "fangpin.cli", "run", "--month", MONTH, "--data-dir",
                              str(data_dir)], env=_env(data_dir, home, secrets), capture_output=True, text=True,
                             cwd=PROJECT_ROOT, timeout=600)
        still_open = holder.poll() is None
        rebuilt = subprocess.run([sys.executable, "-m", "fangpin.cli", "snapshot", "--data-dir", str(data_dir)],
                                 env=_env(data_dir, home, secrets), capture_output=True, text=True,
                                 cwd=PROJECT_ROOT, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    return {"data_dir": data_dir, "home": home, "run": run, "still_open": still_open, "snapshot": rebuilt}


def _con(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(warehouse.warehouse_path(data_dir)), read_only=True)


def _workbooks(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "exports" / MONTH).glob("*.xlsx"))


def test_the_run_succeeds_while_an_analyst_holds_the_snapshot_open(county):
    run = county["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert county["still_open"]
    assert county["snapshot"].returncode == 0, county["snapshot"].stderr[-2000:]
    assert "analyst snapshot:" in county["snapshot"].stdout


def _identifiers(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, set[str]]]:
    """Per township: its ID numbers and household codes (roster, queue, unmatched), across all tables."""
    rows = con.execute("""
        SELECT township, household_id AS code FROM roster.persons
        UNION SELECT township, id_number FROM roster.persons
        UNION SELECT township, household_id FROM marts.warning_queue
        UNION SELECT township, head_id_number FROM marts.warning_queue
        UNION SELECT township, unnest(member_ids) FROM marts.warning_queue
        UNION SELECT township, id_number FROM marts.unmatched_persons
    """).fetchall()
    codes: dict[str, set[str]] = {}
    for township, code in rows:
        if township and code:
            codes.setdefault(township, set()).add(code)
    return {"codes": codes}


def _cells(workbook: openpyxl.Workbook) -> list[str]:
    return [str(value) for ws in workbook.worksheets for row in ws.iter_rows(values_only=True)
            for value in row if value is not None]


def test_every_township_workbook_holds_only_its_own_households(county):
    data_dir = county["data_dir"]
    passwords = _passwords()
    with _con(data_dir) as con:
        codes = _identifiers(con)["codes"]
        queue = dict(con.execute("SELECT township, list(household_id) FROM marts.warning_queue WHERE month = ? "
                                 "GROUP BY township", [MONTH]).fetchall())
    paths = _workbooks(data_dir)
    assert len(queue) >= 4 and {p.stem for p in paths} >= set(queue)
    everybody = set().union(*codes.values())
    for path in paths:  # every township of the demo
        township = protect.workbook_township(protect.decrypt_workbook(path, passwords[path.stem]))
        assert township == path.stem
        workbook = openpyxl.load_workbook(protect.decrypt_workbook(path, passwords[township]), read_only=True)
        cells = [cell for cell in _cells(workbook) if not DIGEST.fullmatch(cell)]  # the meta sheet's digest
        workbook.close()
        found = {token for cell in cells for token in CODE_TOKEN.findall(cell)}
        assert found, f"{township}: no identifiers at all?"
        others = (found & everybody) - codes.get(township, set())
        assert not others, f"{township} workbook holds other townships' identifiers: {sorted(others)[:5]}"
        assert found <= codes.get(township, set()), f"{township}: unknown identifiers {sorted(found - everybody)[:5]}"
        own_queue = set(queue.get(township, []))
        assert own_queue <= found, f"{township}: warned households missing from its workbook"


def test_workbooks_open_only_with_their_password(county):
    paths = _workbooks(county["data_dir"])
    passwords = _passwords()
    for path in paths:
        assert protect.is_encrypted(path)
        with pytest.raises((InvalidFileException, zipfile.BadZipFile)):
            openpyxl.load_workbook(path)
        with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
            protect.decrypt_workbook(path, "wrong password")
        other = next(p for name, p in passwords.items() if name != path.stem)
        with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
            protect.decrypt_workbook(path, other)
        assert openpyxl.load_workbook(protect.decrypt_workbook(path, passwords[path.stem]), read_only=True).sheetnames


def test_warehouse_and_exports_are_owner_only(county):
    data_dir = county["data_dir"]
    assert os.stat(warehouse.warehouse_path(data_dir)).st_mode & 0o777 == 0o600
    assert os.stat(snapshot.snapshot_path(data_dir)).st_mode & 0o777 == 0o600
    for folder in (data_dir / "exports", data_dir / "exports" / MONTH):
        assert os.stat(folder).st_mode & 0o777 == 0o700, folder
    files = list((data_dir / "exports" / MONTH).iterdir())
    assert files and all(os.stat(f).st_mode & 0o777 == 0o600 for f in files)


def test_no_step_output_with_personal_data_is_left_on_disk_by_dagster(county):
    """Step outputs stay in the run's memory: DAGSTER_HOME holds no pickled roster or list rows."""
    with _con(county["data_dir"]) as con:
        ids = {row[0] for row in con.execute("SELECT id_number FROM roster.persons LIMIT 200").fetchall()}
    assert ids
    blobs = [p for p in county["home"].rglob("*") if p.is_file()]
    pickles = [p for p in blobs if "storage" in p.parts and "compute_logs" not in p.parts]
    assert not pickles, f"pickled step outputs under DAGSTER_HOME/storage: {pickles[:3]}"
    for path in blobs:
        data = path.read_bytes()
        assert not [i for i in ids if i.encode() in data], f"an ID number in {path}"


def test_each_workbook_is_audited(county):
    data_dir = county["data_dir"]
    with _con(data_dir) as con:
        audit = con.execute("SELECT township, households, os_user, encrypted, path FROM audit.exports "
                            "WHERE month = ? AND kind = 'township_workbook'", [MONTH]).fetchall()
        queued = dict(con.execute("SELECT township, count(*) FROM marts.warning_queue WHERE month = ? GROUP BY 1",
                                  [MONTH]).fetchall())
        snapshots = con.execute("SELECT count(*) FROM audit.exports WHERE kind = 'analyst_snapshot'").fetchone()[0]
    paths = _workbooks(data_dir)
    assert sorted(row[4] for row in audit) == sorted(str(p) for p in paths)
    assert {row[0]: row[1] for row in audit} == {p.stem: queued.get(p.stem, 0) for p in paths}
    assert all(row[2] and row[3] is True for row in audit)
    assert snapshots == 2


def test_the_snapshot_has_no_id_roster_name_or_phone(county):
    data_dir = county["data_dir"]
    with _con(data_dir) as con:
        names = {n for (n,) in con.execute(
            "SELECT name FROM roster.persons UNION SELECT name FROM staging.list_rows "
            "UNION SELECT name FROM marts.unmatched_persons UNION SELECT head_name FROM marts.warning_queue "
            "UNION SELECT cadre FROM roster.households").fetchall() if n and len(n) >= 2}
        phones = {p for (p,) in con.execute("SELECT phone FROM roster.persons UNION SELECT phone FROM roster.households"
                                            ).fetchall() if p}
        places = {p for (p,) in con.execute("SELECT township FROM roster.villages UNION SELECT village FROM "
                                            "roster.villages").fetchall()}
    values = [text for _, column, text in text_values(snapshot.snapshot_path(data_dir))
              if column != "sha256"]  # file digests: hex, 18 digits in a row happen by chance
    assert len(values) > 1000 and len(names) > 500 and len(phones) > 100
    assert not [v for v in values if ID_TOKEN.search(v)]
    assert not [v for v in values if v in names]
    # Names inside longer texts; place names are cut out first (a village may contain a two-character name).
    ordered_places = sorted(places, key=len, reverse=True)
    stripped = pl.Series(values).str.replace_many(ordered_places, ["〇"] * len(ordered_places), leftmost=True)
    leaked = stripped.filter(stripped.str.contains_any(sorted(names))).to_list()
    assert not leaked, leaked[:5]
    digit_runs = {run for v in values for run in re.findall(r"[0-9]{7,}", v)}
    assert not digit_runs & phones


def test_the_snapshot_links_the_run_to_the_roster_by_pseudonym(county):
    data_dir = county["data_dir"]
    with _con(data_dir) as con:
        heads = con.execute("SELECT head_id_number FROM marts.warning_queue WHERE month = ? ORDER BY 1 LIMIT 3",
                            [MONTH]).fetchall()
    with duckdb.connect(str(snapshot.snapshot_path(data_dir)), read_only=True) as con:
        linked = con.execute("SELECT count(*) FROM marts.warning_queue q JOIN roster.persons p "
                             "ON p.person_pseudonym = q.head_pseudonym AND p.month = q.month").fetchone()[0]
        total = con.execute("SELECT count(*) FROM marts.warning_queue").fetchone()[0]
        pseudonyms = {p for (p,) in con.execute("SELECT head_pseudonym FROM marts.warning_queue").fetchall()}
    assert total > 0 and linked == total
    assert {snapshot.pseudonym(KEY.encode(), h) for (h,) in heads} <= pseudonyms

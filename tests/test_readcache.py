"""fangpin.readcache: a month re-run re-parses only files whose content is new, and reads exactly what a cold scan
reads (same tables, problems, received files), on a small demo county.

Parsing is counted at `reading._load_grids`, the function that opens one file's bytes; every other step of a scan
(hashing, recognising lists, wrong-month checks) runs each time and is compared against an uncached scan.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fangpin import config, demo, readcache, reading
from fangpin.files import sha256_of

MONTH = "2026-10"
PERSONS = 2000


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("county")
    summary = demo.generate(data_dir, months=[MONTH], persons=PERSONS)
    return data_dir, summary


@pytest.fixture
def county(generated, tmp_path) -> Path:
    """A private copy of the generated month (mtimes kept), so each test may add, change and remove files."""
    source, _ = generated
    data_dir = tmp_path / "data"
    shutil.copytree(source / "raw" / MONTH, data_dir / "raw" / MONTH)
    return data_dir


@pytest.fixture
def parsed(monkeypatch) -> list[str]:
    """The relative paths `reading._load_grids` parses, in order."""
    calls: list[str] = []
    original = reading._load_grids

    def counting(path, limits):
        calls.append(Path(path).as_posix())
        return original(path, limits)

    monkeypatch.setattr(reading, "_load_grids", counting)
    return calls


def _scan(data_dir: Path):
    """What the drop_zone and roster assets read for the month, with the entries stored as at a run's end."""
    scanned = reading.scan_month(data_dir, MONTH), reading.read_roster(data_dir, MONTH)
    readcache.wait_for_writes()
    return scanned


def _uncached(data_dir: Path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setenv("FANGPIN_READ_CACHE", "0")
        return _scan(data_dir)


def _assert_tables_equal(left: list[reading.SheetTable], right: list[reading.SheetTable]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right):
        fields = [f.name for f in dataclasses.fields(a) if f.name != "frame"]
        assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}
        assert_frame_equal(a.frame, b.frame)  # values, column order and dtypes


def _assert_same(got, expected) -> None:
    (scan, (roster_tables, roster_problems, roster_files)) = got
    (scan_x, (roster_tables_x, roster_problems_x, roster_files_x)) = expected
    assert scan.files == scan_x.files  # status, note, lists, sha256 of every received file
    assert scan.problems == scan_x.problems  # the quarantine of whole files and sheets
    assert sorted(scan.tables) == sorted(scan_x.tables)
    for key in scan.tables:
        _assert_tables_equal(scan.tables[key], scan_x.tables[key])
    _assert_tables_equal(roster_tables, roster_tables_x)
    assert (roster_problems, roster_files) == (roster_problems_x, roster_files_x)


def _entries(data_dir: Path, kind: str = "lists") -> set[str]:
    folder = data_dir / "cache" / "reads" / MONTH / kind
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _parsed_sources(calls: list[str], data_dir: Path) -> list[str]:
    return [reading.relative_source(Path(c), data_dir) for c in calls]


# ---------------------------------------------------------------------------------------------- the late file
def test_a_late_file_is_the_only_file_parsed_again(county, generated, parsed, monkeypatch, tmp_path):
    [late] = generated[1]["late_files"][MONTH]
    held = tmp_path / "held" / Path(late).name
    held.parent.mkdir()
    shutil.move(county / late, held)  # the department has not sent it yet

    first = _scan(county)
    cold = _parsed_sources(parsed, county)
    assert cold and late not in cold
    assert len(cold) == len(set(cold))  # each file parsed once
    assert any(source.startswith(f"raw/{MONTH}/roster/") for source in cold)

    shutil.move(held, county / late)  # it arrives; the sensor starts a re-run of the month
    parsed.clear()
    second = _scan(county)
    assert _parsed_sources(parsed, county) == [late]
    assert late in {f.source_file for f in second[0].files}
    assert len(second[0].files) == len(first[0].files) + 1

    parsed.clear()
    third = _scan(county)
    assert parsed == []  # nothing new: nothing parsed

    expected = _uncached(county, monkeypatch)
    assert len(parsed) == len(cold) + 1  # the uncached scan parsed everything
    _assert_same(second, expected)
    _assert_same(third, expected)


def test_an_uncached_scan_leaves_no_cache_and_deletes_the_months_entries(county, monkeypatch):
    _scan(county)
    assert _entries(county) and _entries(county, "roster")
    _uncached(county, monkeypatch)
    assert _entries(county) == set() and _entries(county, "roster") == set()


# ---------------------------------------------------------------------------------------------- what invalidates
def test_a_changed_file_under_the_same_name_is_read_again(county, parsed, monkeypatch):
    scan, _ = _scan(county)
    copies = [f.duplicate_of for f in scan.files]
    changed = next(county / f.source_file for f in scan.files
                   if f.status == "read" and f.source_file.endswith(".csv") and f.source_file not in copies)
    lines = changed.read_bytes().splitlines(keepends=True)
    changed.write_bytes(b"".join(lines[:-1]))  # the department resends it one row shorter
    parsed.clear()

    got = _scan(county)

    assert _parsed_sources(parsed, county) == [reading.relative_source(changed, county)]
    _assert_same(got, _uncached(county, monkeypatch))


def test_a_renamed_file_is_read_again_so_lineage_names_the_new_path(county, parsed, monkeypatch):
    _scan(county)
    old = sorted((county / "raw" / MONTH).rglob("*.xlsx"))[-1]
    new = old.with_name("重新报送" + old.name)
    old.rename(new)
    parsed.clear()

    got = _scan(county)

    assert _parsed_sources(parsed, county) == [reading.relative_source(new, county)]
    sources = {table.source_file for tables in got[0].tables.values() for table in tables}
    assert reading.relative_source(old, county) not in sources
    _assert_same(got, _uncached(county, monkeypatch))


def test_other_reader_settings_do_not_reuse_an_entry(county, parsed):
    reading.read_roster(county, MONTH)
    parsed.clear()
    reading.read_roster(county, MONTH, limits=reading.IntakeLimits(max_cell_chars=100))
    assert len(parsed) == 1  # another limit can give another result: parsed again, not loaded


def test_a_code_change_reads_everything_again(county, parsed, monkeypatch):
    _scan(county)
    before = _entries(county)
    cold = len(parsed)
    parsed.clear()
    monkeypatch.setattr(readcache, "code_fingerprint", lambda: "another version of reading.py")
    _scan(county)
    assert len(parsed) == cold
    assert len(_entries(county)) == len(before) and not _entries(county) & before  # old entries pruned


# ---------------------------------------------------------------------------------------------- trust
def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "meta_not_json": lambda entry: (entry / readcache.META).write_text("{\"layout\": 1, \"tab", encoding="utf-8"),
    "parquet_truncated": lambda entry: (entry / "t0.parquet").write_bytes((entry / "t0.parquet").read_bytes()[:100]),
    "parquet_byte_flipped": lambda entry: _flip_a_byte(entry / "t0.parquet"),
    "parquet_missing": lambda entry: (entry / "t0.parquet").unlink(),
    "meta_missing": lambda entry: (entry / readcache.META).unlink(),
    # What a crash can leave of an entry renamed into place before its data reached the disk (entries are not
    # fsynced): empty files, or blocks of zeros
    "meta_empty": lambda entry: (entry / readcache.META).write_bytes(b""),
    "parquet_zeroed": lambda entry: (entry / "t0.parquet").write_bytes(bytes(len((entry / "t0.parquet").read_bytes()))),
}


@pytest.mark.parametrize("corrupt", sorted(CORRUPTIONS))
def test_a_corrupt_entry_is_ignored_and_the_file_read_again(county, parsed, monkeypatch, corrupt):
    _scan(county)
    roster = county / "cache" / "reads" / MONTH / "roster"
    [entry] = roster.iterdir()
    CORRUPTIONS[corrupt](entry)
    parsed.clear()

    got = _scan(county)

    assert len(parsed) == 1 and "/roster/" in parsed[0]
    _assert_same(got, _uncached(county, monkeypatch))


def test_a_half_written_entry_is_never_trusted(county, parsed, monkeypatch):
    """A crash mid-write leaves only a temporary directory: the next run reads the file and stores it anew."""
    _scan(county)
    roster = county / "cache" / "reads" / MONTH / "roster"
    [entry] = roster.iterdir()
    entry.rename(roster / (readcache.TEMP_PREFIX + "crashed"))
    parsed.clear()

    got = _scan(county)

    assert len(parsed) == 1
    assert {p.name for p in roster.iterdir()} == {entry.name, readcache.TEMP_PREFIX + "crashed"}  # may be in use
    _assert_same(got, _uncached(county, monkeypatch))
    hour_ago = time.time() - 2 * readcache.STALE_TEMP_SECONDS
    os.utime(roster / (readcache.TEMP_PREFIX + "crashed"), (hour_ago, hour_ago))
    _scan(county)
    assert {p.name for p in roster.iterdir()} == {entry.name}  # a crashed writer's leftover is pruned


def test_an_entry_is_stored_as_read_although_the_caller_then_changes_the_result(county):
    """Entries are written by a background thread; what scan_month does to a result after `read` (setting
    list_key, adding problems and notes) must not reach the entry, or a cached scan would repeat it."""
    reg = config.registry()
    path = next(p for p in sorted((county / "raw" / MONTH).rglob("*.xlsx")) if "roster" not in p.parts)
    how = (path, sha256_of(path), reg.list_headers, reg.list_required, reg.total_row_words)
    cache = readcache.ReadCache(county, MONTH, "lists", use=True)
    tables, problems, notes = cache.read(*how)
    expected = [dataclasses.replace(p) for p in problems], list(notes)
    problems.append(reading.FileProblem(tables[0].source_file, "", "file_unrecognised", "added by the caller"))
    notes.append("added by the caller")
    for problem in problems:
        problem.list_key = "changed"
    cache.prune()  # waits for the writer

    cached = readcache.ReadCache(county, MONTH, "lists", use=True)
    again = cached.read(*how)

    assert cached._writer is None  # answered from the entry, nothing read or written again
    _assert_tables_equal(again[0], tables)
    assert (again[1], again[2]) == expected


def test_a_scan_returns_while_its_entries_are_stored_and_the_run_waits_for_them(county, monkeypatch):
    """The roster's read does not wait for its entries (the run's roster step would): the writer thread stores
    them, then prunes the scan; `wait_for_writes`, called at a run's end, waits for both."""
    reading.read_roster(county, MONTH)
    readcache.wait_for_writes()
    stale = county / "cache" / "reads" / MONTH / "roster" / "an-entry-of-a-file-no-longer-received"
    stale.mkdir()
    release, storing = threading.Event(), threading.Event()
    store = readcache._store

    def held_back(*args):
        storing.set()
        assert release.wait(30)
        store(*args)

    monkeypatch.setattr(readcache, "_store", held_back)
    monkeypatch.setattr(readcache, "code_fingerprint", lambda: "another version: every file read again")
    tables, _, _ = reading.read_roster(county, MONTH)  # returns although its entry is not stored yet

    assert tables and storing.wait(30) and stale.exists()  # neither stored nor pruned yet
    release.set()
    readcache.wait_for_writes()
    assert not stale.exists() and len(_entries(county, "roster")) == 1


def test_a_failing_cache_write_does_not_fail_the_read(county, parsed, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(readcache, "_store", full_disk)
    got = _scan(county)
    assert _entries(county, "roster") == set()
    _assert_same(got, _uncached(county, monkeypatch))


# ---------------------------------------------------------------------------------------------- privacy
def test_cache_files_are_owner_only_whatever_the_umask(county):
    previous = os.umask(0)
    try:
        _scan(county)
    finally:
        os.umask(previous)
    cache = county / "cache"
    folders = [cache, *(p for p in cache.rglob("*") if p.is_dir())]
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(folders) > 4 and any(p.suffix == ".parquet" for p in files)
    assert all(os.stat(f).st_mode & 0o777 == 0o700 for f in folders), folders
    assert all(os.stat(f).st_mode & 0o777 == 0o600 for f in files), files
    assert (cache / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"


def test_entries_of_removed_files_are_pruned_at_the_next_scan(county, parsed):
    scan, _ = _scan(county)
    before = _entries(county)
    removed = next(f for f in scan.files if f.status == "read")
    (county / removed.source_file).unlink()
    parsed.clear()

    _scan(county)

    after = _entries(county)
    assert parsed == []
    assert len(after) == len(before) - 1 and after < before
    assert not any(name.startswith(removed.sha256) for name in after)
    assert _entries(county, "roster")  # the roster's entries are the roster scan's to prune


def test_a_month_whose_drop_zone_is_gone_loses_its_entries(county):
    _scan(county)
    shutil.rmtree(county / "raw" / MONTH)
    assert _scan(county)[0].files == []
    assert _entries(county) == set() and _entries(county, "roster") == set()


def test_frames_keep_their_types_through_the_cache(county):
    """The roster's text columns stay text (IDs with a leading zero or a trailing X are not numbers)."""
    _scan(county)
    tables, _, _ = reading.read_roster(county, MONTH)
    frame = tables[0].frame
    assert frame.schema["row_number"] == pl.Int64 and frame.schema["is_total_row"] == pl.Boolean
    assert frame.schema["id_number"] == pl.String


def test_a_parquet_roster_is_read_again_rather_than_cached(county, parsed):
    """A province's parquet roster reads as fast as its cache entry would load: no entry, no second copy of the
    personal data, and the same tables on every read."""
    roster_dir = county / "raw" / MONTH / "roster"
    tables, _, _ = reading.read_roster(county, MONTH)
    frame = pl.concat([t.frame.drop("row_number", "is_total_row", "source_file", "sheet", strict=False)
                       for t in tables], how="diagonal_relaxed")
    for old in roster_dir.iterdir():
        old.unlink()
    frame.write_parquet(roster_dir / "花名册.parquet")
    parsed.clear()

    first, _, _ = reading.read_roster(county, MONTH)
    second, _, _ = reading.read_roster(county, MONTH)

    assert _parsed_sources(parsed, county) == [f"raw/{MONTH}/roster/花名册.parquet"] * 2
    assert _entries(county, "roster") == set()
    _assert_tables_equal(first, second)
    assert first[0].frame.height == frame.height

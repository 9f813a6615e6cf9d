"""A per-file read cache keyed by content, so a month re-run with one late file re-reads that file only.

`reading.scan_month` and `reading.read_roster` hash every received file anyway (`_Intake.admit`); what
`reading.read_table_file` returns for one file (its SheetTables, FileProblems and notes) is kept under
`<data_dir>/cache/reads/<month>/<kind>/<sha256>-<fingerprint>/` (one parquet per table and a `meta.json` for the
rest) and loaded instead of parsing the same bytes again. The fingerprint covers everything else that changes the
result: the file's path relative to the data dir (lineage columns carry it), the reader configuration (header maps,
required columns, total-row words, intake limits) and the reader code (the source of fangpin/reading.py, this
module, fangpin/values.py (what a blank cell is) and schemas/reasons.py, and the Polars and fastexcel versions), so editing any of them reads everything anew.

Trust: an entry is written into a temporary directory and renamed into place only when complete, and each parquet's
sha256 is checked on load; an entry that is missing a part, corrupt or of another layout (or that a crash left
incomplete: entries are not fsynced) is deleted and the file read again. A failure to write the cache never fails
the read.

Privacy: the cache holds the same personal data as the drop zone. Directories are 0700, files 0600; every scan of a
month deletes that month's entries for files no longer in its drop zone (all of them when the cache is off), and
`<data_dir>/cache/.gitignore` keeps the folder out of git when the data dir sits inside the repository.

Parquet files are not cached (`NOT_CACHED`): reading one costs what loading its entry would.

Off switch: `read_cache: false` in config/county.yaml, or the environment variable `FANGPIN_READ_CACHE=0`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import polars as pl

from fangpin import config
from fangpin import reading

LAYOUT = 2  # bump when the layout of an entry changes (2: tables keep their original cells, not their raw JSON)
META = "meta.json"
TEMP_PREFIX = ".tmp-"
GITIGNORE = b"# personal data (fangpin.readcache): never commit\n*\n"
STALE_TEMP_SECONDS = 3600  # a temporary entry older than this is a crashed writer's: pruned
_CODE_FILES = ("fangpin/reading.py", "fangpin/readcache.py", "fangpin/values.py", "schemas/reasons.py")
_LIBRARIES = ("polars", "fastexcel")
# A parquet roster (a province's export) is read as fast as its entry would be, so caching it is pure cost: ~0.3
# CPU-s and a second copy of the personal data for each 300,000-person county.
NOT_CACHED = frozenset({".parquet"})
log = logging.getLogger(__name__)


class CorruptEntry(Exception):
    """A cache entry that cannot be trusted: it is deleted and the file read again."""


def enabled() -> bool:
    """config/county.yaml `read_cache` (default true), overridden by FANGPIN_READ_CACHE=0/1."""
    env = os.environ.get("FANGPIN_READ_CACHE", "").strip().lower()
    if env:
        return env not in {"0", "false", "no", "off"}
    return bool(config.county().get("read_cache", True))


@lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """The reader's source and library versions: a code change invalidates every entry."""
    digest = hashlib.sha256(f"layout {LAYOUT}\n".encode())
    for name in _CODE_FILES:
        digest.update(name.encode() + b"\0" + (config.PROJECT_ROOT / name).read_bytes() + b"\0")
    for library in _LIBRARIES:
        digest.update(f"{library} {metadata.version(library)}\n".encode())
    return digest.hexdigest()


def entry_key(sha256: str, source: str, header_map: dict[str, tuple[str, ...]], required: tuple[str, ...],
              total_words: tuple[str, ...], limits: reading.IntakeLimits) -> str:
    """`<sha256>-<fingerprint>`: the content, and everything besides it that changes what is read."""
    settings = {
        "source": source,
        "header_map": {key: list(words) for key, words in sorted(header_map.items())},
        "required": list(required),
        "total_words": list(total_words),
        "limits": dataclasses.asdict(limits),
        "code": code_fingerprint(),
    }
    fingerprint = hashlib.sha256(json.dumps(settings, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    return f"{sha256}-{fingerprint[:24]}"


# ----------------------------------------------------------------------------------------------------------------
# Owner-only files and directories
# ----------------------------------------------------------------------------------------------------------------
def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, data: bytes) -> str:
    """Create `path` as 0600 holding `data`; returns the data's sha256.

    Not fsynced: `_load` checks every part against the digests in meta.json, so an entry a crash left incomplete is
    deleted and its file read again, and a cache needs no durability. Without the fsyncs (two per entry, and the
    folder's), and hashing the bytes in hand rather than reading the file back, storing a province county's 22
    entries cost 0.054-0.058 CPU-s instead of 0.062-0.083 (bench/FINDINGS.md, session 32)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


# ----------------------------------------------------------------------------------------------------------------
# One entry: what read_table_file returned for one file
# ----------------------------------------------------------------------------------------------------------------
def _table_fields(table: reading.SheetTable) -> dict:
    return {f.name: getattr(table, f.name) for f in dataclasses.fields(table) if f.name != "frame"}


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    """zstd at level 1: as small as the default level 3 on these tables, and a quarter faster to write."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", compression_level=1)
    return buffer.getvalue()


def _store(folder: Path, key: str, result: tuple[list, list, list]) -> None:
    """Write the entry into a temporary directory, then rename it into place: never a half entry under `key`."""
    tables, problems, notes = result
    temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))  # mkdtemp makes it 0700
    try:
        described = []
        for index, table in enumerate(tables):
            name = f"t{index}.parquet"
            digest = _write_private(temp / name, _parquet_bytes(table.frame))
            described.append({"fields": _table_fields(table), "file": name, "sha256": digest,
                              "schema": {c: str(t) for c, t in table.frame.schema.items()}})
        meta = {"layout": LAYOUT, "key": key, "tables": described,
                "problems": [dataclasses.asdict(p) for p in problems], "notes": list(notes)}
        text = json.dumps(meta, ensure_ascii=False).encode("utf-8")
        _write_private(temp / META, text)
        try:
            os.rename(temp, folder / key)
        except OSError:  # another run stored the same entry meanwhile: keep theirs
            shutil.rmtree(temp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _load(entry: Path, key: str) -> tuple[list, list, list]:
    """The stored result, or CorruptEntry when any part is missing, altered or of another layout."""
    try:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
        if meta.get("layout") != LAYOUT or meta.get("key") != key:
            raise CorruptEntry("layout or key differs")
        tables = []
        for described in meta["tables"]:
            path = entry / described["file"]
            data = path.read_bytes()  # read once: checked, then parsed
            if hashlib.sha256(data).hexdigest() != described["sha256"]:
                raise CorruptEntry(f"{path.name} altered")
            frame = pl.read_parquet(io.BytesIO(data))
            if {c: str(t) for c, t in frame.schema.items()} != described["schema"]:
                raise CorruptEntry(f"{path.name} schema differs")
            tables.append(reading.SheetTable(**described["fields"], frame=frame))
        problems = [reading.FileProblem(**problem) for problem in meta["problems"]]
        notes = [str(note) for note in meta["notes"]]
    except CorruptEntry:
        raise
    except Exception as exc:  # unreadable JSON, missing file, bad parquet, fields of another code version
        raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
    return tables, problems, notes


# ----------------------------------------------------------------------------------------------------------------
# The cache of one month's scan
# ----------------------------------------------------------------------------------------------------------------
# The pruning that `ReadCache.prune_when_written` queued behind a scan's entries, one per scan not yet waited for:
# once one is done, so are that scan's writes.
_finishing: list[Future] = []
_FINISHING_LOCK = threading.Lock()


def wait_for_writes() -> None:
    """Block until every entry a scan of this process handed to its writer thread is stored, and the scan pruned.
    A run's end (the resource's teardown, the CLI before it exits) and tests that look at the entries call it."""
    with _FINISHING_LOCK:
        pending, _finishing[:] = list(_finishing), []
    for pruned in pending:
        pruned.result()  # `_prune_logged` and the writes before it never raise


class ReadCache:
    """The entries of one month and kind ("lists" for scan_month, "roster" for read_roster).

    `read` answers from the cache or reads the file (and stores it); `prune` then deletes every entry this scan did
    not use, so entries of files no longer received do not outlive the next scan.

    New entries are written by one background thread while the next file is parsed (writing parquet releases the
    GIL); `prune` first waits until every entry is written, and
    `prune_when_written` lets the scan return meanwhile.
    """

    def __init__(self, data_dir: Path, month: str, kind: str, use: bool | None = None):
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "cache"
        valid = bool(config.MONTH_PATTERN.match(month))  # the month names a folder: never "../x"
        self.folder = self.root / "reads" / (month if valid else "_invalid") / kind
        self.enabled = valid and (enabled() if use is None else use)
        self.used: set[str] = set()
        self._writer: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # read_roster reads two files at once

    def read(self, path: Path, sha256: str, header_map: dict[str, tuple[str, ...]], required: tuple[str, ...],
             total_words: tuple[str, ...], limits: reading.IntakeLimits | None = None,
             ) -> tuple[list[reading.SheetTable], list[reading.FileProblem], list[str]]:
        """What `reading.read_table_file` returns for `path` (whose content hashes to `sha256`)."""
        limits = limits or reading.intake_limits()
        if not self.enabled or Path(path).suffix.lower() in NOT_CACHED:
            return reading.read_table_file(path, self.data_dir, header_map, required, total_words, limits)
        source = reading.relative_source(Path(path), self.data_dir)
        key = entry_key(sha256, source, header_map, tuple(required), tuple(total_words), limits)
        self.used.add(key)
        entry = self.folder / key
        if entry.is_dir():
            try:
                return _load(entry, key)
            except CorruptEntry as exc:
                log.warning("read cache: ignoring entry for %s (%s); reading the file again", source, exc)
                shutil.rmtree(entry, ignore_errors=True)
        result = reading.read_table_file(path, self.data_dir, header_map, required, total_words, limits)
        self._store_later(source, key, result)
        return result

    def _store_later(self, source: str, key: str, result: tuple[list, list, list]) -> None:
        """Hand the entry to the writer thread, as read now: callers go on to set problems' list_key and add notes,
        which a cached read must not replay, so the records and lists are copied first (frames never change)."""
        tables, problems, notes = result
        copied = ([dataclasses.replace(t, unmapped_headers=list(t.unmapped_headers)) for t in tables],
                  [dataclasses.replace(p) for p in problems], list(notes))
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readcache")
            self._writer.submit(self._store_now, source, key, copied)

    def _store_now(self, source: str, key: str, result: tuple[list, list, list]) -> None:
        try:
            self._ensure_folder()
            _store(self.folder, key, result)
        except Exception as exc:  # a full disk or a read-only data dir must not fail the read
            log.warning("read cache: could not store %s (%s: %s)", source, type(exc).__name__, exc)

    def wait(self) -> None:
        """Block until every entry handed to the writer thread is stored (or its failure logged)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)  # runs every write handed to it; _store_now never raises

    def _ensure_folder(self) -> None:
        _private_dir(self.root)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            try:
                _write_private(ignore, GITIGNORE)
            except FileExistsError:  # the roster and drop-zone steps of one run start together
                pass
        for folder in (self.root / "reads", self.folder.parent, self.folder):
            _private_dir(folder)

    def prune_when_written(self) -> None:
        """`prune` in the writer thread, after the entries handed to it: the scan returns as soon as its files are
        read instead of waiting for their entries (a 1,000,000-person county's two roster files: 1.15-1.25 CPU-s of
        parquet, of which `read_roster` waited 0.4-0.7 s at its end; bench/FINDINGS.md, session 28).
        `wait_for_writes` waits for it; nothing written: pruned now."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            self._delete_unused()
            return
        pruned = writer.submit(self._prune_logged)
        writer.shutdown(wait=False)  # the tasks handed over still run; the thread ends after them
        with _FINISHING_LOCK:  # a long-lived process that never waits keeps only the scans still being written
            _finishing[:] = [*(f for f in _finishing if not f.done()), pruned]

    def _prune_logged(self) -> None:
        try:
            self._delete_unused()
        except Exception as exc:  # a prune that fails leaves old entries for the next scan, never fails the run
            log.warning("read cache: could not prune %s (%s: %s)", self.folder, type(exc).__name__, exc)

    def prune(self) -> list[str]:
        """Delete the entries this scan did not use (and crashed writers' leftovers); returns the deleted names."""
        self.wait()
        return self._delete_unused()

    def _delete_unused(self) -> list[str]:
        if not self.folder.is_dir() or self.folder.parent.name == "_invalid":
            return []
        deleted = []
        for entry in self.folder.iterdir():
            if entry.name in self.used:
                continue
            if entry.name.startswith(TEMP_PREFIX) and _age_seconds(entry) < STALE_TEMP_SECONDS:
                continue  # another run may be writing it right now
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            deleted.append(entry.name)
        return deleted

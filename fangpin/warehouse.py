"""The DuckDB warehouse: one file, one writer, and a run that changes it all at once or not at all.

Why a lock of our own on top of DuckDB's: DuckDB refuses a second writer instantly, and a reader held open in
another process (an analyst's session) blocks writers too. fangpin waits a bounded time for both, then fails with a
message that names the process holding the file and what to do, instead of a raw IOException.

Why a run writes to a copy (`RunWarehouse`): a monthly run writes in several steps (ingestion, links, queue, marts),
each its own transaction. Killed between two of them, the live file would hold new staging rows beside last run's
warning queue. So a run copies the live file once, all its steps write to the copy, and the copy replaces the live
file by one atomic rename when the run ends: a SIGKILL anywhere leaves the live file exactly as before the run.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from fangpin.config import PROJECT_ROOT, county
from fangpin.cores import duckdb_config
from fangpin.files import fsync

SCHEMA_FILES = ("schemas/warehouse.sql", "schemas/marts.sql", "schemas/risk.sql", "schemas/quality.sql")


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be opened now; the message (Chinese, then English) says why and what to do."""


class WarehouseBusy(WarehouseUnavailable):
    """Another process holds the warehouse; the message says which and what to do."""


class WarehouseDamaged(WarehouseUnavailable):
    """The warehouse file is not a DuckDB database any more (damaged, overwritten); fangpin never writes over it."""


def warehouse_path(data_dir: Path) -> Path:
    return Path(data_dir) / "warehouse" / "fangpin.duckdb"


def _holder_description(message: str) -> str:
    """'PID 1234 (python analyst.py)' from DuckDB's lock error, as far as it can be told."""
    match = re.search(r"PID (\d+)", message)
    if not match:
        return "另一个程序"
    pid = match.group(1)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        cmdline = " ".join(raw.split())  # one line, even for `python -c "<script>"`
    except OSError:
        cmdline = "?"
    return f"进程 PID {pid}（{cmdline}）"


def busy_message(path: Path, holder: str, waited: float) -> str:
    return (
        f"数据仓库 {path} 正被{holder}占用，已等待 {waited:.0f} 秒。"
        f" The warehouse is held by {holder}. Close that DuckDB session (an analyst's open connection blocks writers; "
        f"analysts should use the read-only snapshot), or wait for the other fangpin run to finish, then run again."
    )


def damaged_message(path: Path, error: Exception) -> str:
    return (
        f"数据仓库文件 {path} 已损坏或不是 DuckDB 数据库文件，fangpin 没有改动它。请从备份恢复该文件；或把它移到别处，"
        f"再逐月重新运行（各月收到的文件仍在 raw/ 中）。 The warehouse file is damaged or not a DuckDB database "
        f"({error}); fangpin left it as it is. Restore it from a backup, or move it away and run each month again "
        f"(the files received stay in raw/)."
    )


def raise_if_damaged(path: Path, error: duckdb.Error) -> None:
    """DuckDB's error opening the warehouse, when it says the file is no database, as fangpin's WarehouseDamaged."""
    if "not a valid duckdb database file" in str(error).lower():
        raise WarehouseDamaged(damaged_message(path, error)) from error


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the warehouse file `path`, with this process's share of the cores
    (`fangpin.cores`: all of them unless the process is one of several workers)."""
    return duckdb.connect(str(path), read_only=read_only, config=duckdb_config())


def _connect_with_wait(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    started = time.monotonic()
    while True:
        try:
            return connect(path, read_only=read_only)
        except duckdb.IOException as error:
            raise_if_damaged(path, error)
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(busy_message(path, _holder_description(str(error)), time.monotonic() - started)) from error
            time.sleep(0.5)


@contextmanager
def _writer_lock(path: Path, wait_seconds: float) -> Iterator[None]:
    """An advisory lock beside the warehouse file, so fangpin runs (schedule, sensor, CLI) take turns."""
    lock_path = path.with_suffix(".writer.lock")
    started = time.monotonic()
    with open(lock_path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started >= wait_seconds:
                    handle.seek(0)
                    holder = handle.read().strip() or "另一个 fangpin 运行"
                    raise WarehouseBusy(busy_message(path, holder, time.monotonic() - started)) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"fangpin run PID {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_wait_seconds() -> float:
    return float(os.environ.get("FANGPIN_LOCK_WAIT", county().get("warehouse", {}).get("lock_wait_seconds", 120)))


@contextmanager
def writer(data_dir: Path, wait_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The one writing connection to the live warehouse, schema ensured; closed (and the lock released) on exit.

    For writes outside a run (the snapshot's audit row, library calls); a run writes through `RunWarehouse`.
    """
    path = warehouse_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    wait = lock_wait_seconds() if wait_seconds is None else wait_seconds
    with ExitStack() as held:
        held.enter_context(_writer_lock(path, wait))
        con = _connect_with_wait(path, read_only=False, wait_seconds=wait)
        try:
            ensure_schema(con)
            yield con
        finally:
            con.close()
    os.chmod(path, 0o600)


def working_copy_path(path: Path) -> Path:
    """Where a run writes until it publishes: beside the live file, so the rename stays on one file system."""
    return path.with_name(path.name + ".run")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


class RunWarehouse:
    """The warehouse as one run writes it: a working copy, published by one atomic rename when the run ends.

    Lazy: the lock is taken and the copy made at the run's first write (a run that fails while reading files never
    waits for the warehouse). `writer()` may be entered many times (once per step); every step gets the same one
    connection to the copy, opened at the first and closed at `publish()`: nobody else reads the copy, and opening,
    checking the schema and checkpointing on close once per step cost ~0.35 s of a 300,000-person county's run.
    `publish()` makes every committed write of the run live at once; a run killed before it changes nothing, and the
    next run throws the left-over copy away.
    """

    def __init__(self, data_dir: Path, wait_seconds: float | None = None):
        self.live = warehouse_path(data_dir)
        self.working = working_copy_path(self.live)
        self.wait = lock_wait_seconds() if wait_seconds is None else wait_seconds
        self._lock: ExitStack | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def started(self) -> bool:
        return self._lock is not None

    def _start(self) -> None:
        """Lock, wait out any holder of the live file, then copy it (a fresh copy: a killed run's copy is stale)."""
        self.live.parent.mkdir(parents=True, exist_ok=True)
        lock = ExitStack()
        lock.enter_context(_writer_lock(self.live, self.wait))
        try:
            # Opening the live file read-write waits for (and names) an analyst's session, and folds in a WAL an
            # older fangpin left, so the file copied below is complete.
            _connect_with_wait(self.live, read_only=False, wait_seconds=self.wait).close()
            for stale in (self.working, _wal(self.working)):
                stale.unlink(missing_ok=True)
            shutil.copyfile(self.live, self.working)
            os.chmod(self.working, 0o600)
        except BaseException:
            lock.close()
            raise
        self._lock = lock

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The run's connection to its working copy, schema ensured. A step that fails closes it, so the next step
        starts from what was committed, whatever state the failure left the connection in."""
        if not self.started:
            self._start()
        if self._con is None:
            self._con = connect(self.working)
            ensure_schema(self._con)
        try:
            yield self._con
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        """Close the run's connection (DuckDB checkpoints its write-ahead log into the copy on close)."""
        if self._con is not None:
            con, self._con = self._con, None
            con.close()

    def publish(self) -> bool:
        """Replace the live file with the working copy (all the run's commits at once); release the lock.

        Returns whether anything was published (False when the run never wrote)."""
        if not self.started:
            return False
        try:
            self._close()
            if _wal(self.working).exists():  # every connection closed checkpoints; a WAL left means one did not
                connect(self.working).close()
            _crash_point("publish")
            fsync(self.working)
            os.replace(self.working, self.live)
            fsync(self.live.parent)
        finally:
            self.release()
        return True

    def discard(self) -> None:
        """Drop the working copy: the live file stays exactly as before the run (an interrupted run)."""
        try:
            self._close()
            for path in (self.working, _wal(self.working)):
                path.unlink(missing_ok=True)
        finally:
            self.release()

    def release(self) -> None:
        self._close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@contextmanager
def reader(data_dir: Path, wait_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    path = warehouse_path(data_dir)
    wait = lock_wait_seconds() if wait_seconds is None else wait_seconds
    con = _connect_with_wait(path, read_only=True, wait_seconds=wait)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for name in SCHEMA_FILES:
        sql_file = PROJECT_ROOT / name
        if sql_file.exists():
            con.execute(sql_file.read_text(encoding="utf-8"))


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of `schema.name`, in their order. From the table's relation, not information_schema: 0.16
    against 2.7 ms a call, and `replace_month` asks once per table it writes (bench/FINDINGS.md, session 22)."""
    return list(con.table(table).columns)


def as_arrow(frame: pl.DataFrame):
    """The frame as an Arrow table in Polars' own layout (string views), which DuckDB reads as it is: the default,
    older layout (large strings) is a copy, 0.12-0.14 s for a million roster persons."""
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def replace_month(con: duckdb.DuckDBPyConnection, table: str, month: str, frame: pl.DataFrame,
                  keep: str | None = None) -> int:
    """Delete `month` from `table`, insert `frame` (matched by column name). Inside the caller's transaction.

    `keep` narrows the delete to the rows this writer owns (a SQL condition), e.g. quarantine rows of one source.
    """
    owned = f" AND ({keep})" if keep else ""
    con.execute(f"DELETE FROM {table} WHERE month = ?{owned}", [month])
    if frame.is_empty():
        return 0
    columns = [c for c in table_columns(con, table) if c in frame.columns]
    con.register("_incoming", as_arrow(frame.select(columns)))
    try:
        column_list = ", ".join(f'"{c}"' for c in columns)
        con.execute(f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM _incoming")
    finally:
        con.unregister("_incoming")
    return frame.height


def temp_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    """Create (or replace) temp table `name` from a Polars frame, so SQL can join configuration or small inputs."""
    view = f"_incoming_{name}"
    con.register(view, as_arrow(frame))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, begun: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any error, so a month is written whole or not at all. `begun`: the
    transaction was begun earlier on this connection (and part of it written); this finishes it the same way."""
    if not begun:
        con.execute("BEGIN TRANSACTION")
    try:
        yield con
        _crash_point()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _crash_point(where: str | None = None) -> None:
    """Test hook for tests/test_crash_safety.py: `FANGPIN_CRASH_AT=<asset>` SIGKILLs the run with that asset's
    transaction fully written but not committed; `FANGPIN_CRASH_AT=publish` kills it just before the working copy
    replaces the live file. Unset (production) it is one env lookup."""
    target = os.environ.get("FANGPIN_CRASH_AT")
    if not target:
        return
    if where is None:
        where = _current_asset()
    if where == target:
        os.kill(os.getpid(), signal.SIGKILL)


def _current_asset() -> str | None:
    import dagster as dg

    try:
        return dg.AssetExecutionContext.get().asset_key.to_user_string()
    except dg.DagsterInvariantViolationError:  # not inside a Dagster asset (a library call, a test)
        return None

"""Dagster's SQLite event log, keeping a connection open per database file instead of opening one per write.

Why: a county run writes ~430 events (each asset, check, output and log line), and Dagster's stock
`SqliteEventLogStorage` builds a new SQLAlchemy engine and opens a new SQLite connection for every read and write
(2,138 in one county run, ~5 per event: the run's file and the index file), then disposes of them. Measured on one
300,000-person province county: 6.4 ms per event, 2.8 s of a 17 s run. Keeping the engines and one pooled
connection per file makes it 2.4 ms per event (bench/FINDINGS.md, session 5). The files, tables and locking are
Dagster's own: the UI, the daemon and a stock instance read the same history, and two processes may still write it
side by side (SQLite's file locks, Dagster's busy timeout). Dispose of the instance when done (the CLI does): the
kept connections are closed and SQLite folds its write-ahead log back into the files.

The instance uses this class through `event_log_storage` in DAGSTER_HOME/dagster.yaml (fangpin.instance). It
subclasses a class of Dagster's internal package (`dagster._core`), so it is tied to the pinned Dagster version:
after an upgrade, tests/test_event_log.py checks that a stock instance still reads what it wrote.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import Connection, Engine, create_engine, event

KEPT_ENGINES = 8  # the index file and the latest runs' files; an older run's engine is closed when it falls out
KNOWN_PARTITION_SECONDS = 60.0  # a dynamic partition seen to exist is taken as existing this long without asking


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with an engine kept per database file (the index, and one file per run)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables_found: set[str] = set()  # tables of the index file seen to exist
        self._partitions_seen: dict[tuple[str, str], float] = {}  # (definition, key) -> when seen to exist
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """Same contract as Dagster's: one transaction on the shard's file, serialised by the storage's lock."""
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, created (and its database initialised) on first use; the least recently used beyond
        KEPT_ENGINES is disposed of, so a long-lived webserver does not hold a file open per run ever seen."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            # One connection stays pooled; max_overflow=-1: Dagster's database set-up opens a second connection
            # inside the first, which must not wait for the pool.
            engine = create_engine(self.conn_string_for_shard(shard), pool_size=1, max_overflow=-1,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", _write_ahead_without_sync_per_commit)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > KEPT_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before storing each asset check event (~100 in a county run) and each materialization's
        indexed tags (~30), each time through a new engine reading the index file's schema (3 ms). A table, once
        there, stays (migrations only add), so a yes is kept; a no is asked again."""
        if table_name not in self._tables_found:
            if not super().has_table(table_name):
                return False
            self._tables_found.add(table_name)
        return True

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        """Dagster asks for each input and output of a province's county run (~200 times, one query each, ~1 s of a
        ~20 s run). A partition seen to exist is taken as existing for KNOWN_PARTITION_SECONDS, or until this
        process deletes it; a missing one is asked again every time."""
        key = (partitions_def_name, partition_key)
        seen = self._partitions_seen.get(key)
        if seen is not None and time.monotonic() - seen < KNOWN_PARTITION_SECONDS:
            return True
        exists = super().has_dynamic_partition(partitions_def_name, partition_key)
        if exists:
            self._partitions_seen[key] = time.monotonic()
        else:
            self._partitions_seen.pop(key, None)
        return exists

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partitions_seen.pop((partitions_def_name, partition_key), None)
        super().delete_dynamic_partition(partitions_def_name, partition_key)

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        """Close every kept connection first: wiping deletes the run files they point at."""
        self._dispose_engines()
        self._partitions_seen.clear()
        self._tables_found.clear()
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


def _write_ahead_without_sync_per_commit(dbapi_connection, _record) -> None:
    """Every kept connection in WAL mode with `synchronous=NORMAL`: SQLite syncs the write-ahead log at checkpoints,
    not at every commit.

    WAL first: Dagster sets it on a new file from inside its set-up transaction, where SQLite ignores it for the
    connection already open, and that connection is the one kept, so a run's file was written in rollback-journal mode
    (several disk syncs per event). NORMAL then: with the default (FULL) each commit, one or two per event, waits for
    the disk, 1.4 ms here when idle, far more while the run writes its warehouse. What NORMAL gives up, in WAL mode
    only: after a power cut or an OS crash (not a killed process) the last events may be missing; the files stay
    consistent (SQLite's guarantee), the run shows as unfinished and the month is re-run, which is safe.
    """
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")

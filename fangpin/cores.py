"""How the machine's cores are shared when several worker processes run counties side by side.

Why: Polars and DuckDB each start a thread pool as large as the machine's cores. A province run keeps one worker
process per core busy (`fangpin.instance.side_by_side_runs`), so each worker's pools ran two threads a library on
its one core's worth of work, and their threads waited on each other: with each worker's pools sized to its share
(one thread each on two cores), the province's first eight counties as one run took 62.7 instead of 68.3 CPU-s
(median of six alternated rounds, -8%; bench/FINDINGS.md, session 31). A lone run (`fangpin run`, one county) keeps
every core: it has them to itself.

Both libraries read their size once, at start: Polars when it is imported (`POLARS_MAX_THREADS`), DuckDB when a
connection opens (`FANGPIN_DUCKDB_THREADS`, read by `duckdb_config`). So a worker is given its share in the
environment it starts with (`worker_environment`), never by changing a running process.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

POLARS_THREADS_ENV = "POLARS_MAX_THREADS"  # Polars' own variable
DUCKDB_THREADS_ENV = "FANGPIN_DUCKDB_THREADS"  # fangpin's: DuckDB threads per warehouse connection


def worker_environment(workers: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The thread-pool sizes for one of `workers` processes sharing this machine's cores: each library its share
    (at least one thread), unless `environ` (default: this process's) already sets it, which then holds."""
    environ = os.environ if environ is None else environ
    share = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    return {name: environ.get(name) or share for name in (POLARS_THREADS_ENV, DUCKDB_THREADS_ENV)}


def duckdb_config() -> dict[str, int]:
    """`duckdb.connect`'s config: this process's DuckDB thread share when it runs as one of several workers, else
    nothing (DuckDB's default, every core)."""
    threads = os.environ.get(DUCKDB_THREADS_ENV)
    return {"threads": int(threads)} if threads else {}


@contextmanager
def spawning_workers(workers: int) -> Iterator[None]:
    """Inside, this process's environment is one worker's (`worker_environment`), for the `workers` processes
    spawned there to inherit (a process pool passes no environment of its own); as it was again on leaving."""
    shares = worker_environment(workers)
    before = {name: os.environ.get(name) for name in shares}
    os.environ.update(shares)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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

fangpin's Polars also keeps the memory it frees for 30 s before handing it back to the system (`KEEP_FREED_MEMORY`,
read by Polars' allocator, jemalloc, once, when Polars loads: `keep_freed_memory`, called when fangpin is imported,
and `worker_environment` for the workers). Polars itself has jemalloc return freed pages within a second, and the
next frames fault them in again, page by page: ~210,000 page faults a province county, 0.4-0.5 s of the kernel's
time in its ~4 CPU-s. Kept, the faults fell to ~90,000 and the county's CPU by 4.5-5.8% (two workers run side by
side on the same counties, one with it and one without, three times; user time the same, system time halved;
each worker's peak 1.2 -> 1.4 GB); eight counties as one run 39.7-40.6 -> 36.0-38.3 CPU-s; the bench county run
alone 16.55 -> 15.71 s (medians of four alternated runs; bench/FINDINGS.md, session 32).
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Mapping, MutableMapping

POLARS_THREADS_ENV = "POLARS_MAX_THREADS"  # Polars' own variable
DUCKDB_THREADS_ENV = "FANGPIN_DUCKDB_THREADS"  # fangpin's: DuckDB threads per warehouse connection
POLARS_ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"  # the options of Polars' jemalloc (built with the `_rjem_` prefix)
KEEP_FREED_MEMORY = "dirty_decay_ms:30000,muzzy_decay_ms:30000"  # freed pages reused for 30 s, then returned
# What Polars itself puts first in POLARS_ALLOCATOR_ENV when it is imported (polars/__init__.py, pinned version),
# before any options the variable held; jemalloc takes the last value of an option, so options given after win.
POLARS_OWN_ALLOCATOR_OPTIONS = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def worker_environment(workers: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one of `workers` processes sharing this machine's cores: each library's thread pool its
    share (at least one thread), and Polars' allocator keeping freed memory (`KEEP_FREED_MEMORY`), each unless
    `environ` (default: this process's) already sets it, which then holds."""
    environ = os.environ if environ is None else environ
    share = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    shares = {name: environ.get(name) or share for name in (POLARS_THREADS_ENV, DUCKDB_THREADS_ENV)}
    return shares | {POLARS_ALLOCATOR_ENV: _allocator_options_given(environ) or KEEP_FREED_MEMORY}


def keep_freed_memory(environ: MutableMapping[str, str] = os.environ) -> None:
    """Have this process's Polars keep the memory it frees (`KEEP_FREED_MEMORY`) unless the user gave allocator
    options of their own. Called when fangpin is imported; once Polars is loaded its allocator has read its options,
    so the variable is then left as it is (setting it would only mislead)."""
    if "polars" not in sys.modules and not _allocator_options_given(environ):
        environ[POLARS_ALLOCATOR_ENV] = KEEP_FREED_MEMORY


def _allocator_options_given(environ: Mapping[str, str]) -> str:
    """The Polars allocator options a user gave in `environ`: what the variable holds past the options Polars adds
    itself (in a process that has imported Polars, the variable always holds those)."""
    options = environ.get(POLARS_ALLOCATOR_ENV, "")
    return options.removeprefix(POLARS_OWN_ALLOCATOR_OPTIONS).lstrip(",")


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


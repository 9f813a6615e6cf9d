"""Worker processes running counties side by side share the machine's cores: each one's Polars and DuckDB thread
pools are sized to its share (fangpin.cores), while a lone run keeps every core."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb

from fangpin import cores, warehouse

WORKER_VARIABLES = (cores.POLARS_THREADS_ENV, cores.DUCKDB_THREADS_ENV, cores.POLARS_ALLOCATOR_ENV)


KEEP = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:30000,muzzy_decay_ms:30000"}  # Polars keeps freed memory 30 s


def test_each_of_two_workers_on_four_cores_gets_two_threads_a_library(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert cores.worker_environment(2, environ={}) == {"POLARS_MAX_THREADS": "2", "FANGPIN_DUCKDB_THREADS": "2",
                                                       **KEEP}
    assert cores.worker_environment(3, environ={}) == {"POLARS_MAX_THREADS": "1", "FANGPIN_DUCKDB_THREADS": "1",
                                                       **KEEP}
    assert cores.worker_environment(8, environ={})["POLARS_MAX_THREADS"] == "1"  # never none


def test_a_setting_given_by_the_user_holds(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    given = cores.worker_environment(2, environ={"POLARS_MAX_THREADS": "3", "_RJEM_MALLOC_CONF": "narenas:1"})
    assert given == {"POLARS_MAX_THREADS": "3", "FANGPIN_DUCKDB_THREADS": "2", "_RJEM_MALLOC_CONF": "narenas:1"}
    # Where Polars was imported, it has put its own options first; the user's came after them
    polars_and_user = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:500,muzzy_decay_ms:1000,narenas:1"}
    assert cores.worker_environment(2, environ=polars_and_user)["_RJEM_MALLOC_CONF"] == "narenas:1"


def test_the_options_polars_adds_itself_are_not_the_users(monkeypatch):
    """Polars, imported, writes its own allocator options into the variable (the one run's parent has imported it):
    they are not a choice that should keep the workers from keeping freed memory."""
    import polars  # noqa: F401 - it sets the variable when imported

    assert os.environ["_RJEM_MALLOC_CONF"].startswith(cores.POLARS_OWN_ALLOCATOR_OPTIONS)
    monkeypatch.setenv("_RJEM_MALLOC_CONF", cores.POLARS_OWN_ALLOCATOR_OPTIONS)
    assert cores.worker_environment(2)["_RJEM_MALLOC_CONF"] == cores.KEEP_FREED_MEMORY


def test_a_warehouse_connection_takes_the_duckdb_share_and_every_core_without_one(tmp_path, monkeypatch):
    def threads() -> int:
        with warehouse.connect(tmp_path / "w.duckdb") as con:
            return int(con.execute("SELECT current_setting('threads')").fetchone()[0])

    with duckdb.connect() as plain:  # DuckDB's own default: every core it finds (it may heed a container's limit)
        every_core = int(plain.execute("SELECT current_setting('threads')").fetchone()[0])
    monkeypatch.delenv(cores.DUCKDB_THREADS_ENV, raising=False)
    assert threads() == every_core
    monkeypatch.setenv(cores.DUCKDB_THREADS_ENV, "1")
    assert threads() == 1


def pool_sizes() -> dict[str, int | str | None]:
    """The threads this process's Polars pool has and a warehouse connection of it gets, and the options its
    Polars allocator started with (run in a worker)."""
    import polars as pl

    with duckdb.connect(config=cores.duckdb_config()) as con:
        duckdb_threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    return {"polars": pl.thread_pool_size(), "duckdb": int(duckdb_threads),
            "allocator": os.environ.get(cores.POLARS_ALLOCATOR_ENV)}


def test_workers_spawned_inside_get_their_share_and_the_environment_is_as_before_after(monkeypatch):
    """As `one_run.run_counties` does: the pool made outside, its workers spawned at the submits inside."""
    for name in WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    share = max(1, (os.cpu_count() or 1) // 2)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with cores.spawning_workers(2):
            sizes = pool.submit(pool_sizes)
        # the worker's Polars put its own options first: the last value of an option is the one jemalloc takes
        assert sizes.result() == {"polars": share, "duckdb": share,
                                  "allocator": f"{cores.POLARS_OWN_ALLOCATOR_OPTIONS},{cores.KEEP_FREED_MEMORY}"}
    assert not any(name in os.environ for name in WORKER_VARIABLES)


def test_the_one_run_spawns_its_workers_with_their_share(monkeypatch):
    """ProcessPoolExecutor starts a worker at a submit: what the environment says then is what the worker gets."""
    from concurrent.futures import Future

    from pipelines import one_run

    for name in WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    seen = []

    class Pool:
        def __init__(self, **options):
            pass

        def submit(self, task, province_dir, month, county):
            seen.append({name: os.environ.get(name) for name in WORKER_VARIABLES})
            future = Future()
            future.set_result(one_run.CountyOutcome(county))
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(one_run, "ProcessPoolExecutor", Pool)
    list(one_run.run_counties(Path("/nowhere"), "2026-10", {"360701": 2, "360702": 1}, workers=2))
    assert seen == [{"POLARS_MAX_THREADS": "2", "FANGPIN_DUCKDB_THREADS": "2", **KEEP}] * 2
    assert not any(name in os.environ for name in WORKER_VARIABLES)


def allocator_options_after(imports: str, **environment: str) -> str:
    """The Polars allocator options a fresh Python process ends with after `imports` (Polars reads them once, when
    it loads; they are what its allocator uses)."""
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != cores.POLARS_ALLOCATOR_ENV} | environment
    code = f"import os; {imports}; import polars; print(os.environ['{cores.POLARS_ALLOCATOR_ENV}'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return done.stdout.strip()


def test_every_fangpin_process_keeps_freed_memory_unless_the_user_said_otherwise():
    """`fangpin run` and the Dagster code location load fangpin before Polars, so their Polars keeps freed memory;
    options the user gave hold."""
    ours = f"{cores.POLARS_OWN_ALLOCATOR_OPTIONS},{cores.KEEP_FREED_MEMORY}"
    assert allocator_options_after("import pipelines.definitions") == ours  # the code location, as Dagster loads it
    assert allocator_options_after("import fangpin.cli") == ours  # the `fangpin` command
    assert allocator_options_after("import fangpin", _RJEM_MALLOC_CONF="narenas:2") == (
        f"{cores.POLARS_OWN_ALLOCATOR_OPTIONS},narenas:2")

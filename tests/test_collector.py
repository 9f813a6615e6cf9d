"""fangpin.collector: no full garbage collection while big libraries load, and what they loaded kept out of later ones."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading

import pytest

from fangpin import collector
from fangpin.config import PROJECT_ROOT


@pytest.fixture(autouse=True)
def collector_restored():
    """Each test starts from the process's thresholds with nothing frozen, and leaves them so; no thread an earlier
    test started (great-expectations' warm-up, a roster read) is still importing modules meanwhile."""
    for thread in threading.enumerate():
        if thread.name.startswith("fangpin-"):
            thread.join(60)
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def full_collections_during(action) -> int:
    """How many full (oldest-generation) collections ran while `action()` ran."""
    started = []

    def seen(phase, info):
        if phase == "start" and info["generation"] == 2:
            started.append(1)

    gc.callbacks.append(seen)
    try:
        action()
    finally:
        gc.callbacks.remove(seen)
    return len(started)


def many_lasting_objects() -> list:
    """Enough surviving containers to make the collector, with eager thresholds, run a full collection: more than a
    quarter of the objects the last full collection kept, however many earlier tests left in this process."""
    return [[i] for i in range(len(gc.get_objects()) // 2 + 100_000)]


def test_objects_made_while_loading_trigger_no_full_collection():
    gc.set_threshold(10, 1, 1)  # eager: a full collection as soon as survivors grow by a quarter
    assert full_collections_during(many_lasting_objects) > 0  # the control: without the block, they do

    def inside_the_block():
        with collector.loading_modules():
            many_lasting_objects()

    assert full_collections_during(inside_the_block) == 0


def test_a_block_that_loads_a_module_freezes_what_is_alive_and_one_that_does_not_freezes_nothing(tmp_path, monkeypatch):
    module = f"fangpin_collector_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text("TABLE = [[i] for i in range(1000)]\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with collector.loading_modules():
            pass
        assert gc.get_freeze_count() == 0
        with collector.loading_modules():
            __import__(module)
        assert gc.get_freeze_count() > 1000  # at least the module's own table
    finally:
        sys.modules.pop(module, None)


def test_thresholds_come_back_when_the_last_block_closes_even_after_an_error():
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError):
        with collector.loading_modules():
            with collector.loading_modules():
                pass
            assert gc.get_threshold() == (700, 10, collector._NEVER)  # the outer block is still open
            raise RuntimeError("an import failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_blocks_overlapping_in_two_threads_restore_the_thresholds_once_both_are_done():
    gc.set_threshold(700, 10, 10)
    inner_open, outer_may_close = threading.Event(), threading.Event()

    def other_thread():
        with collector.loading_modules():
            inner_open.set()
            outer_may_close.wait(5)

    thread = threading.Thread(target=other_thread)
    with collector.loading_modules():
        thread.start()
        inner_open.wait(5)
    assert gc.get_threshold() == (700, 10, collector._NEVER)  # the other thread's block is still open
    outer_may_close.set()
    thread.join()
    assert gc.get_threshold() == (700, 10, 10)


def test_a_run_loads_dagster_its_code_location_and_great_expectations_without_full_collections(tmp_path):
    """In a fresh interpreter: the CLI's run path (up to the job's name, which here does not exist) and the quality
    suites' context each load their libraries with no full collection, then freeze what they loaded."""
    code = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: full.append(1) if phase == 'start' and info['generation'] == 2 "
        "else None)\n"
        "from fangpin import cli, quality\n"
        "full.clear()\n"
        "try:\n"
        "    cli._execute('pipelines.definitions', 'no_such_job', '2026-10', Path(sys.argv[1]))\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)\n"
        "after_dagster = gc.get_freeze_count()\n"
        "quality._shared_batch_definition()\n"
        "print(len(full), after_dagster > 100_000, gc.get_freeze_count() > after_dagster + 100_000)\n"
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    shown = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, check=True, env={**os.environ, "DAGSTER_HOME": str(home)}).stdout.split()
    assert shown == ["DagsterInvariantViolationError", "0", "True", "True"]

"""bench.steps: CPU per step of province counties in one process; the first county (imports) is left out."""
from __future__ import annotations

import pytest

from bench import steps
from pipelines.one_run import CountyOutcome


def _county(code: str, cpu: float, **step_cpu: float) -> tuple[CountyOutcome, float]:
    return CountyOutcome(code, seconds=cpu / 2, steps={step: 0.1 for step in step_cpu}, step_cpu=step_cpu), cpu


def test_medians_leave_out_the_first_county_and_come_largest_first():
    done = [_county("01", 9.0, roster=5.0, queue=3.0),  # the warm-up: imports, not a further county's cost
            _county("02", 4.0, roster=1.0, queue=2.0), _county("03", 5.0, roster=1.2, queue=2.2),
            _county("04", 6.0, roster=1.4, queue=1.0)]
    medians = steps.warm_medians(done)
    assert list(medians) == [steps.COUNTY_TOTAL, "queue", "roster"]
    assert medians == {steps.COUNTY_TOTAL: 5.0, "queue": 2.0, "roster": 1.2}


def test_a_step_a_county_did_not_run_counts_as_nothing_there_and_one_county_is_its_own_median():
    done = [_county("01", 9.0, roster=5.0), _county("02", 4.0, roster=1.0, dashboard=0.3),
            _county("03", 4.0, roster=1.0)]
    assert steps.warm_medians(done)["dashboard"] == 0.15  # median of 0.3 and 0 (the step did not run in 03)
    assert steps.warm_medians(done[:1]) == {steps.COUNTY_TOTAL: 9.0, "roster": 5.0}


def test_report_names_the_warm_up_and_gives_each_step_its_share_of_the_county():
    done = [_county("01", 9.0, roster=5.0), _county("02", 4.0, roster=1.0, queue=3.0)]
    lines = steps.report(done)
    assert lines[0] == "01: 4.50 s, 9.00 CPU-s (first: imports and warm-ups, not in the medians)"
    assert lines[1] == "02: 2.00 s, 4.00 CPU-s"
    assert lines[2] == "median CPU-s per warm county (1 counties):"
    assert lines[3:] == [f"    4.00  100%  {steps.COUNTY_TOTAL}", "    3.00   75%  queue", "    1.00   25%  roster"]


def test_steps_start_again_with_a_one_run_workers_thread_pools_unless_asked_for_every_core(monkeypatch, tmp_path):
    """Polars sizes its pool once, at import: `bench.steps` measures a worker's pools only by starting again with a
    worker's environment (fangpin.cores); `--all-cores` measures with every core, in the same process."""
    import os

    from fangpin import cores
    from fangpin.instance import side_by_side_runs

    started = []

    def execve(path, args, env):
        started.append((args, env))
        raise SystemExit(0)

    monkeypatch.delenv(cores.DUCKDB_THREADS_ENV, raising=False)
    monkeypatch.delenv(cores.POLARS_THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(steps, "CACHE_DIR", tmp_path)  # no cached province: the run itself would stop at once
    with pytest.raises(SystemExit):  # the process would now be the one started again
        steps.main(["--counties", "2"])
    (args, env), = started
    assert args[1:] == ["-m", "bench.steps", "--counties", "2"]
    share = str(max(1, (os.cpu_count() or 1) // side_by_side_runs()))
    assert env[cores.DUCKDB_THREADS_ENV] == env[cores.POLARS_THREADS_ENV] == share
    assert steps.main(["--counties", "2", "--all-cores"]) == 2 and len(started) == 1  # no province cached here

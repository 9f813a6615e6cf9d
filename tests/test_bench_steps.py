"""bench.steps: CPU per step of province counties in one process; the first county (imports) is left out."""
from __future__ import annotations

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

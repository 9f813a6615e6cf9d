"""bench.idle: a county run's CPU samples attributed to the step running, so the steps that leave a core idle show."""
from __future__ import annotations

from bench import idle
from bench.run import StepTime


def _step(name: str, start: float, seconds: float) -> StepTime:
    return StepTime(name, "read", start, seconds)


STEPS = [_step("roster", 1.0, 2.0), _step("department_lists", 3.0, 1.0)]


def test_each_interval_goes_to_the_step_running_at_its_midpoint():
    assert idle.where(0.5, STEPS) == idle.STARTUP
    assert idle.where(2.9, STEPS) == "roster" and idle.where(3.0, STEPS) == "department_lists"
    assert idle.where(4.0, STEPS) == idle.EXIT
    gap = [_step("roster", 1.0, 1.0), _step("department_lists", 3.0, 1.0)]
    assert idle.where(2.5, gap) == "between steps"
    assert idle.where(1.5, [_step("roster", 1.0, 2.0), _step("drop_zone", 1.2, 0.5)]) == "drop_zone"  # the later


def test_busy_and_idle_core_seconds_per_step_on_two_cores():
    # (seconds, CPU seconds): startup uses one core, the roster both, the lists one, the exit a fifth of one
    samples = [(0.0, 0.0), (1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 6.0), (5.0, 6.2)]
    found = idle.busy_and_idle(samples, STEPS, cores=2)
    assert list(found) == [idle.STARTUP, "roster", "department_lists", idle.EXIT]
    assert found[idle.STARTUP] == (1.0, 1.0) and found["roster"] == (4.0, 0.0)
    assert found["department_lists"] == (1.0, 1.0)
    assert round(found[idle.EXIT][0], 6) == 0.2 and round(found[idle.EXIT][1], 6) == 1.8


def test_report_gives_the_run_then_each_step_with_its_start():
    found = {idle.STARTUP: (1.0, 1.0), "roster": (4.0, 0.0)}
    lines = idle.report(5.0, 5.0, found, STEPS)
    assert lines[0] == "run 5.0 s, CPU 5.0 s, idle 1.0 core-s"
    assert lines[1].split() == ["startup", "CPU", "1.00", "idle", "1.00"]
    assert lines[2].split() == ["roster", "from", "1.00", "s", "for", "2.00", "s", "CPU", "4.00", "idle", "0.00"]

"""Where a county run leaves a core idle: one `fangpin run` of the bench county, its CPU per step and the
core-seconds left idle while each step ran.

Why: a county run's wall time is its target (run/floor <= 2), and on two cores the run is faster only where it
keeps both busy. The bench samples the run's CPU every 0.1 s; here each sample's busy and idle core-seconds go to
the step running at the sample's midpoint (from the run's Dagster event log), so the steps that leave a core idle,
and how much, can be read off. Session 28 found this way that department_lists, mostly single-threaded Python,
left a core idle for 0.87 of its 0.97 s, and wrote the roster beside it (bench/FINDINGS.md, session 28 item 0).

    .venv/bin/python -m bench.idle

Runs on the inputs `make bench county` generated and cached (generated first, as that does, when missing). Startup is the time before the first step, exit the
time after the last; background threads (the roster's parse, the quality suites, the township workbooks) count in
the steps they overlap. One run: the machine drifts, so compare two checkouts by running this in each, in turn.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.ab import idle_core_seconds
from bench.run import CACHE_DIR, SCENARIOS, StepTime, ensure_data, read_runs, run_fangpin, run_times

STARTUP, EXIT = "startup", "exit"


def where(moment: float, steps: list[StepTime]) -> str:
    """The step running at `moment` (seconds after the child was spawned): the last one started by then that has not
    ended, startup before the first step, exit after the last one."""
    if not steps or moment < min(step.start for step in steps):
        return STARTUP
    running = [step for step in steps if step.start <= moment < step.start + step.seconds]
    if running:
        return max(running, key=lambda step: step.start).step
    return EXIT if moment >= max(step.start + step.seconds for step in steps) else "between steps"


def busy_and_idle(samples: list[tuple[float, float]], steps: list[StepTime], cores: int
                  ) -> dict[str, tuple[float, float]]:
    """Step -> (CPU seconds, idle core-seconds) from (seconds, CPU seconds) samples of the run, each interval going
    to the step running at its midpoint; in the order the run met them."""
    found: dict[str, tuple[float, float]] = {}
    for (t1, c1), (t2, c2) in zip(samples, samples[1:]):
        name = where((t1 + t2) / 2, steps)
        busy, idle = found.get(name, (0.0, 0.0))
        found[name] = (busy + (c2 - c1), idle + idle_core_seconds([(t1, c1), (t2, c2)], cores))
    return found


def report(wall: float, cpu: float, found: dict[str, tuple[float, float]], steps: list[StepTime]) -> list[str]:
    """One line for the run, then one a step (its start and seconds where it is one): CPU and idle core-seconds."""
    timed = {step.step: step for step in steps}
    lines = [f"run {wall:.1f} s, CPU {cpu:.1f} s, idle {sum(idle for _, idle in found.values()):.1f} core-s"]
    for name, (busy, idle) in found.items():
        step = timed.get(name)
        when = f"from {step.start:6.2f} s for {step.seconds:5.2f} s" if step else " " * 24
        lines.append(f"  {name:22s} {when}  CPU {busy:5.2f}  idle {idle:5.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)  # --help, and no other option
    scenario = SCENARIOS["county"]
    data_dir, _ = ensure_data(scenario, CACHE_DIR)
    with tempfile.TemporaryDirectory(prefix="fangpin-idle-") as temp:
        work = Path(temp)
        outcome = run_fangpin(data_dir, scenario.month, work, scenario.cap_seconds, scenario.memory_cap_gb)
        runs = run_times(read_runs(work / "dagster_home"), outcome.spawned, outcome.spawned + outcome.wall)
    steps = sorted((step for run in runs for step in run.steps), key=lambda step: step.start)
    found = busy_and_idle(outcome.cpu_samples, steps, os.cpu_count() or 1)
    print("\n".join(report(outcome.wall, outcome.cpu, found, steps)))
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())

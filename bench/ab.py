"""Two revisions of fangpin, A and B, run in alternation on the bench county: `fangpin run`, round after round.

Why: this machine's speed drifts within an hour by more than most changes move a county run (bench/README.md,
sessions 13-16), so two `make bench` an hour apart cannot tell a change worth one CPU-second; rounds that alternate
can. Each revision is checked out in a temporary git worktree that uses this project's virtualenv; every run starts
with a fresh DAGSTER_HOME and no warehouse, exports or read cache, on the county that `make bench county` generated
and cached. The run's CPU time is sampled every 0.1 s from /proc, which also gives the core-seconds a core stood
idle; its exact CPU time comes from `os.wait4`.

    .venv/bin/python -m bench.ab REV_A REV_B [--rounds 4]      e.g. bench.ab main~1 main
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.run import CACHE_DIR, SCENARIOS, scenario_dir

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Sample:
    """One run: wall seconds, CPU seconds (user + system) and the core-seconds a core stood idle."""

    wall: float
    cpu: float
    idle: float
    exit_code: int


@contextlib.contextmanager
def checked_out(revision: str, parent: Path) -> Iterator[Path]:
    """`revision` in a git worktree under `parent`, with this project's .venv; removed afterwards."""
    tree = Path(tempfile.mkdtemp(prefix="rev-", dir=parent)) / "tree"
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", "--quiet", str(tree), revision],
                   check=True)
    try:
        (tree / ".venv").symlink_to(PROJECT / ".venv")
        yield tree
    finally:
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(tree)], check=False)


def _cpu_seconds(pid: int) -> float | None:
    """User + system seconds of a running process (every thread), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_core_seconds(samples: list[tuple[float, float]], cores: int) -> float:
    """Core-seconds left idle between (seconds, CPU seconds) samples of a run on `cores` cores."""
    return sum(max(0.0, cores * (t2 - t1) - (c2 - c1)) for (t1, c1), (t2, c2) in zip(samples, samples[1:]))


def run_once(code: Path, data_dir: Path, month: str, work: Path) -> Sample:
    """`fangpin run` of `code` (a worktree) on `data_dir`, with nothing left from an earlier run."""
    home = work / "dagster_home"
    for stale in (home, data_dir / "warehouse", data_dir / "exports", data_dir / "cache"):
        shutil.rmtree(stale, ignore_errors=True)
    home.mkdir(parents=True)
    env = dict(os.environ, DAGSTER_HOME=str(home))
    started = time.perf_counter()
    child = subprocess.Popen([str(code / ".venv" / "bin" / "python"), "-m", "fangpin.cli", "run", "--month", month,
                              "--data-dir", str(data_dir)], cwd=code, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)  # the exact CPU time of the run once it ends
        if pid:
            break
        cpu = _cpu_seconds(child.pid)
        if cpu is not None:
            samples.append((time.perf_counter() - started, cpu))
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(wall, cpu, idle_core_seconds(samples, os.cpu_count() or 1), child.returncode)


def summary(a: list[Sample], b: list[Sample], names: tuple[str, str]) -> list[str]:
    """The lines to print: each round side by side, the medians, and in how many rounds B was the faster."""
    lines = [f"round {i}: {names[0]} {x.wall:.1f} s ({x.cpu:.1f} CPU-s, idle {x.idle:.1f}) | "
             f"{names[1]} {y.wall:.1f} s ({y.cpu:.1f} CPU-s, idle {y.idle:.1f})"
             for i, (x, y) in enumerate(zip(a, b), start=1)]
    for name, runs in zip(names, (a, b)):
        lines.append(f"{name}: median {statistics.median(r.wall for r in runs):.2f} s, "
                     f"CPU {statistics.median(r.cpu for r in runs):.2f} s, "
                     f"idle {statistics.median(r.idle for r in runs):.2f} core-s")
    faster = sum(y.wall < x.wall for x, y in zip(a, b))
    lines.append(f"{names[1]} faster than {names[0]} in {faster} of {len(b)} rounds")
    failed = [name for name, runs in zip(names, (a, b)) if any(r.exit_code for r in runs)]
    if failed:
        lines.append(f"runs that failed (exit code not 0): {', '.join(failed)}: their times mean little")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="revision A (run first in each round)")
    parser.add_argument("b", help="revision B")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    scenario = SCENARIOS["county"]
    data_dir = scenario_dir(scenario, CACHE_DIR) / "data"
    if not (data_dir / "raw" / scenario.month).is_dir():
        print(f"no bench county in {data_dir}: run `make bench county` once first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fangpin-ab-") as temp, \
            checked_out(args.a, Path(temp)) as code_a, checked_out(args.b, Path(temp)) as code_b:
        runs: dict[str, list[Sample]] = {args.a: [], args.b: []}
        for round_number in range(1, args.rounds + 1):
            for name, code in ((args.a, code_a), (args.b, code_b)):
                runs[name].append(run_once(code, data_dir, scenario.month, Path(temp)))
                print(f"round {round_number} {name}: {runs[name][-1].wall:.1f} s", file=sys.stderr, flush=True)
    for line in summary(runs[args.a], runs[args.b], (args.a, args.b)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

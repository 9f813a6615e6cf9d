"""Two revisions of fangpin, A and B, run in alternation on the bench county: `fangpin run`, round after round.

Why: this machine's speed drifts within an hour by more than most changes move a county run (bench/FINDINGS.md,
sessions 13-16), so two `make bench` an hour apart cannot tell a change worth one CPU-second; rounds that alternate
can. Each revision is checked out in a temporary git worktree and run with this project's virtualenv, the way the
bench runs fangpin (`bench.run.run_fangpin`: a fresh DAGSTER_HOME, no warehouse, exports or read cache) on the
county that `make bench county` generated and cached. The run's CPU time, sampled every 0.1 s from /proc, gives the
core-seconds a core stood idle; its exact CPU time comes from `os.wait4`.

    .venv/bin/python -m bench.ab REV_A REV_B [--rounds 4]      e.g. bench.ab main~1 main
    .venv/bin/python -m bench.ab REV_A REV_B --province 8       the province as one run, on 8 of its counties

With `--province N` each round runs `fangpin province --one-run --workers 2` on the first N counties of the
province that `make bench province` generated (copied once into a temporary province), instead of the county: a
province run takes minutes, and changes worth a few percent of it drown in the machine's drift between two runs.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.run import CACHE_DIR, PROJECT_ROOT, SCENARIOS, run_fangpin, scenario_dir



@dataclass(frozen=True)
class Sample:
    """One run: wall seconds, CPU seconds (user + system) and the core-seconds a core stood idle."""

    wall: float
    cpu: float
    idle: float
    exit_code: int


@contextlib.contextmanager
def checked_out(revision: str, parent: Path) -> Iterator[Path]:
    """`revision` in a git worktree under `parent` (run with this project's virtualenv); removed afterwards."""
    tree = Path(tempfile.mkdtemp(prefix="rev-", dir=parent)) / "tree"
    subprocess.run(["git", "-C", str(PROJECT_ROOT), "worktree", "add", "--detach", "--quiet", str(tree), revision],
                   check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(PROJECT_ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def idle_core_seconds(samples: list[tuple[float, float]], cores: int) -> float:
    """Core-seconds left idle between (seconds, CPU seconds) samples of a run on `cores` cores."""
    return sum(max(0.0, cores * (t2 - t1) - (c2 - c1)) for (t1, c1), (t2, c2) in zip(samples, samples[1:]))


def run_once(code: Path, data_dir: Path, work: Path, province: bool = False) -> Sample:
    """`fangpin run` of `code` (a worktree) on the bench county, or with `province` `fangpin province --one-run` on
    a province dir, as `make bench` runs them (`bench.run.run_fangpin`: a fresh instance, no warehouse, exports or
    read cache; the run's log under `work`)."""
    scenario = SCENARIOS["province-one-run" if province else "county"]
    outcome = run_fangpin(data_dir, scenario.month, work, scenario.cap_seconds, scenario.memory_cap_gb, code=code,
                          **({"command": "province", "workers": scenario.workers, "one_run": True} if province else {}))
    cores = os.cpu_count() or 1
    # the samples read the parent's CPU only, while a province's counties run in worker processes: its idle time
    # is what the whole run's CPU (os.wait4, workers included) left of the cores over the wall time
    idle = max(0.0, cores * outcome.wall - outcome.cpu) if province else idle_core_seconds(outcome.cpu_samples, cores)
    return Sample(outcome.wall, outcome.cpu, idle, outcome.returncode)


def province_sample(source: Path, counties: int, target: Path) -> Path:
    """The first `counties` counties (by code) of the province at `source`, their drop zones copied under `target`,
    laid out as `fangpin province` reads a province."""
    for county in sorted((source / "counties").iterdir())[:counties]:
        shutil.copytree(county / "raw", target / "counties" / county.name / "raw")
    return target


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


def revisions_parser(doc: str, a_help: str = "revision A") -> argparse.ArgumentParser:
    """A command line of two revisions to compare, A and B (any git revision: main~1, a hash, a branch), described
    by the first paragraph of the tool's docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("a", help=a_help)
    parser.add_argument("b", help="revision B")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = revisions_parser(__doc__, "revision A (run first in each round)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--province", type=int, metavar="N",
                        help="run the province as one run on its first N counties instead of the county")
    args = parser.parse_args(argv)
    scenario = SCENARIOS["province-one-run" if args.province else "county"]
    data_dir = scenario_dir(scenario, CACHE_DIR) / "data"
    if not (data_dir / ("counties" if args.province else f"raw/{scenario.month}")).is_dir():
        print(f"no bench {scenario.layout} in {data_dir}: run `make bench {scenario.layout}` once first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fangpin-ab-") as temp, \
            checked_out(args.a, Path(temp)) as code_a, checked_out(args.b, Path(temp)) as code_b:
        if args.province:
            data_dir = province_sample(data_dir, args.province, Path(temp) / "province")
        runs_a: list[Sample] = []
        runs_b: list[Sample] = []  # apart from runs_a even when both name one revision (an A/A check of the noise)
        for round_number in range(1, args.rounds + 1):
            for name, code, runs in ((args.a, code_a, runs_a), (args.b, code_b, runs_b)):
                runs.append(run_once(code, data_dir, Path(temp) / "run", province=bool(args.province)))
                print(f"round {round_number} {name}: {runs[-1].wall:.1f} s", file=sys.stderr, flush=True)
    names = (args.a, args.b) if args.a != args.b else (f"{args.a} (A)", f"{args.b} (B)")
    for line in summary(runs_a, runs_b, names):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

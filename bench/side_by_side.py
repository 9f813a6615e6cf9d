"""Two revisions of fangpin, A and B, each run on its own copy of the same province counties at the same time, one
process per core, as a one run's two workers run them; compared by CPU seconds a warm county.

Why: this machine's speed drifts by more than the changes left to measure (bench/README.md, "Comparing on this
machine"): `bench.ab`'s alternated rounds meet different moments of the drift and could not see a change worth ~5%
(session 32), while two processes side by side meet the same moment. Each revision is checked out in a temporary git
worktree; its process runs the counties one after the other (`pipelines.one_run.run_county_of_the_province`, the
function a one run's worker calls), with the environment that revision's own `fangpin.cores.worker_environment`
gives a worker (one-thread pools, Polars keeping freed memory). The first county of each process pays the imports
and warm-ups and is left out; the rest give the median CPU seconds (user + system, `getrusage`) a warm county.

    .venv/bin/python -m bench.side_by_side REV_A REV_B [--counties 7] [--pairs 3]   e.g. main~1 main

Runs on the province `make bench province` generated and cached. A pair is one such run of both, every second one
started B first; B/A below 1 in every pair, by more than an A/A pair differs (`bench.side_by_side main main`), is a
change worth keeping.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.ab import checked_out, province_sample, revisions_parser
from bench.run import SCENARIOS
from bench.steps import cached_province
from fangpin import cores

MARK = "SIDE_BY_SIDE "  # the child's result lines start with this; fangpin's own output goes around them
WORKERS = 2  # a one run's workers on this machine's two cores: the environment each of them gets
# The variables fangpin sets for a worker: each process gets its own revision's, never this one's (whose Polars has
# already put its own allocator options in the environment).
MANAGED = tuple(cores.worker_environment(WORKERS, {}))

# Run by `python -c` in a revision's worktree, so that its code comes first on sys.path (`-c` puts the current
# folder there): each county of argv[3], one after the other. The loop is here, not `bench.steps`', so that every
# revision runs the same one (an older checkout's bench may differ).
CHILD = """
import json, resource, sys, time
from pathlib import Path
from pipelines import one_run
for county in sys.argv[3].split(","):
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    outcome = one_run.run_county_of_the_province(Path(sys.argv[1]), sys.argv[2], county)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(%r + json.dumps({"county": county, "ok": bool(outcome.ok), "wall": time.perf_counter() - started,
                          "user": after.ru_utime - before.ru_utime, "system": after.ru_stime - before.ru_stime,
                          "faults": after.ru_minflt - before.ru_minflt,
                          "steps": dict(getattr(outcome, "step_cpu", {}))}), flush=True)
""" % MARK

ENVIRONMENT = """
import json
from fangpin import cores
print(json.dumps(cores.worker_environment(%d, {})))
""" % WORKERS


@dataclass(frozen=True)
class County:
    """One county of one process: CPU seconds (user, system), wall seconds, minor page faults, success, and the CPU
    seconds of each step (`CountyOutcome.step_cpu`)."""

    county: str
    ok: bool
    wall: float
    user: float
    system: float
    faults: int
    steps: dict[str, float]

    @property
    def cpu(self) -> float:
        return self.user + self.system


def revision_environment(tree: Path) -> dict[str, str]:
    """This process's environment without the variables fangpin sets for a worker, plus those the revision in
    `tree` gives a one run's worker (none for a revision without `fangpin.cores.worker_environment`)."""
    done = subprocess.run([sys.executable, "-c", ENVIRONMENT], cwd=tree, capture_output=True, text=True)
    own = json.loads(done.stdout) if done.returncode == 0 else {}
    return {name: value for name, value in os.environ.items() if name not in MANAGED} | own


def parse_counties(output: str) -> list[County]:
    """The counties a child process reported, in order."""
    return [County(**json.loads(line[len(MARK):])) for line in output.splitlines() if line.startswith(MARK)]


def warm_median(counties: list[County]) -> float:
    """Median CPU seconds of the counties after the first (which pays the imports and warm-ups)."""
    warm = counties[1:] or counties
    return statistics.median(county.cpu for county in warm)


def b_starts_first(pair: int) -> bool:
    """Whether pair number `pair` (from 1) starts B's process first: every second pair (`run_pair` says why)."""
    return pair % 2 == 0


def run_pair(trees: tuple[Path, Path], environments: tuple[dict[str, str], dict[str, str]], source: Path,
             counties: list[str], month: str, work: Path, b_first: bool = False) -> tuple[list[County], list[County]]:
    """Both revisions at once, each in its worktree with its environment (`revision_environment`, asked once per
    revision, not between two starts), each on a fresh copy of the counties (both copied before either starts);
    each process's counties, A's then B's.

    `b_first` starts B's process first: `main` alternates it (`b_starts_first`), because the process started second
    used more CPU in six of eight A/A pairs on session 34's VM (by 0.4-8.6%, bench/FINDINGS.md): were that a bias
    of the order, a fixed order would count it against B."""
    provinces = {}
    for arm in "ab":
        provinces[arm] = work / arm
        shutil.rmtree(provinces[arm], ignore_errors=True)
        province_sample(source, len(counties), provinces[arm])
    arms = dict(zip("ab", zip(trees, environments)))
    processes = {arm: subprocess.Popen([sys.executable, "-c", CHILD, str(provinces[arm]), month, ",".join(counties)],
                                       cwd=arms[arm][0], env=arms[arm][1], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
                 for arm in ("ba" if b_first else "ab")}
    outputs = {arm: process.communicate()[0] for arm, process in processes.items()}
    return parse_counties(outputs["a"]), parse_counties(outputs["b"])


def summary(pairs: list[tuple[list[County], list[County]]], names: tuple[str, str]) -> list[str]:
    """The lines to print: each pair's medians and B/A, then the median ratio and in how many pairs B used less."""
    lines, ratios = [], []
    for number, (a, b) in enumerate(pairs, start=1):
        failed = [name for name, arm in zip(names, (a, b)) if not arm or not all(county.ok for county in arm)]
        if not (a and b):  # a process that reported no county (it failed to start or crashed)
            lines.append(f"pair {number}: no county reported; FAILED: {', '.join(failed)}")
            continue
        cpu_a, cpu_b = warm_median(a), warm_median(b)
        ratios.append(cpu_b / cpu_a)
        faults = [statistics.median(county.faults for county in arm[1:] or arm) for arm in (a, b)]
        lines.append(f"pair {number} ({'B' if b_starts_first(number) else 'A'} started first): "
                     f"{names[0]} {cpu_a:.3f} | {names[1]} {cpu_b:.3f} CPU-s a warm county, "
                     f"B/A {ratios[-1]:.3f}; minor faults {faults[0]:,.0f} | {faults[1]:,.0f}"
                     + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if not ratios:
        return lines
    fewer = sum(ratio < 1 for ratio in ratios)
    lines.append(f"B/A median {statistics.median(ratios):.3f}; {names[1]} used less CPU in {fewer} of "
                 f"{len(ratios)} pairs")
    return lines + step_lines(pairs, names)


def step_lines(pairs: list[tuple[list[County], list[County]]], names: tuple[str, str]) -> list[str]:
    """Each step's median CPU seconds over every pair's warm counties, A against B, largest first: a change
    confined to one step shows there before it shows in a county's total."""
    arms = [[county for pair in pairs for county in pair[arm][1:]] for arm in (0, 1)]
    steps = sorted({step for arm in arms for county in arm for step in county.steps})
    medians = {step: [statistics.median(county.steps.get(step, 0.0) for county in arm) if arm else 0.0
                      for arm in arms] for step in steps}
    lines = [f"step CPU-s (median of warm counties): {names[0]} | {names[1]} | B-A"]
    for step, (a, b) in sorted(medians.items(), key=lambda item: -item[1][0]):
        lines.append(f"  {step:<22} {a:6.3f} | {b:6.3f} | {b - a:+.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = revisions_parser(__doc__)
    parser.add_argument("--counties", type=int, default=7, help="counties per process (the first is left out)")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    scenario = SCENARIOS["province"]
    source = cached_province(scenario.name)
    if source is None:
        return 2
    counties = sorted(path.name for path in (source / "counties").iterdir())[:args.counties]
    names = (args.a, args.b) if args.a != args.b else (f"{args.a} (A)", f"{args.b} (B)")
    with tempfile.TemporaryDirectory(prefix="fangpin-sbs-") as temp, \
            checked_out(args.a, Path(temp)) as tree_a, checked_out(args.b, Path(temp)) as tree_b:
        trees = (tree_a, tree_b)
        environments = (revision_environment(tree_a), revision_environment(tree_b))
        pairs = []
        for number in range(1, args.pairs + 1):
            pairs.append(run_pair(trees, environments, source, counties, scenario.month, Path(temp) / "work",
                                  b_first=b_starts_first(number)))
            print(f"pair {number} of {args.pairs} done", file=sys.stderr, flush=True)
    for line in summary(pairs, names):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

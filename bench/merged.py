"""What a county's fixed costs are worth: N province counties run one after the other, against the same N merged
into one county's drop zone and run as one county, alternated; CPU per step of each.

Why: the province as one run misses three minutes for want of CPU (bench/README.md). If much of a county's CPU
were fixed, whatever its size (the great-expectations suites, the marts' statements, the dashboard, each step's own
start), a set-based path over many counties could save it. Merging counties measures the most such a path could
save: the merged run pays each fixed cost once for N counties. It is not a valid province run (it links persons
across counties, and townships of the same name in different counties become one, with one workbook), so its
saving is an upper bound (session 23 measured it first, by hand; session 35 made it this tool).

    .venv/bin/python -m bench.merged [--counties 4] [--rounds 2]

Runs on the inputs `make bench province` generated and cached, in a one run's worker's environment (its thread
pools), after one warm-up county (imports and warm-ups), counties 2..N+1 of the province: round 1 runs them one by
one and then merged, round 2 merged first, and so on.
"""
from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.ab import province_sample
from bench.run import SCENARIOS
from bench.steps import cached_province, run_counties_here, start_again_as_a_worker

SEPARATE, MERGED = "one by one", "merged"


def merge_drop_zones(counties: list[Path], month: str, target: Path) -> Path:
    """One county's drop zone (`target/raw/month/...`) holding every file of `counties`' drop zones for `month`,
    each in its own department's folder, named `<county>_<name>` so that files of the same name stay apart."""
    for county in counties:
        month_dir = county / "raw" / month
        for path in sorted(month_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(month_dir)
                copy = target / "raw" / month / relative.parent / f"{county.name}_{path.name}"
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
    return target


Sample = tuple[float, collections.Counter]  # the process's CPU seconds for the counties, and CPU per step summed


def run_sample(province: Path, month: str, counties: list[str]) -> Sample:
    """The counties of `province` run one after the other: their CPU seconds and their steps' CPU, summed."""
    done = run_counties_here(province, month, counties)
    failed = [outcome.county for outcome, _ in done if not outcome.ok]
    if failed:
        raise RuntimeError(f"counties that did not run whole: {failed}: their CPU would mean little")
    steps: collections.Counter = collections.Counter()
    for outcome, _ in done:
        steps.update(outcome.step_cpu)
    return sum(cpu for _, cpu in done), steps


def comparison(separate: list[Sample], merged: list[Sample], counties: int) -> list[str]:
    """Per step (largest first, one by one), the median CPU seconds of the counties one by one (summed) and merged,
    the difference; then the totals, with the difference as a share of one by one; then each round's ratio of the
    two totals, which meet the machine's drift (a quarter within minutes on these VMs) at nearly the same time."""
    def median(samples: list[Sample], step: str | None) -> float:
        return statistics.median(cpu if step is None else steps.get(step, 0.0) for cpu, steps in samples)

    names = {step for _, steps in separate + merged for step in steps}
    ordered = sorted(names, key=lambda step: (-median(separate, step), step))
    lines = [f"{'step':24s} {SEPARATE + f' ({counties})':>16s} {MERGED:>8s} {'merged - one by one':>20s}"]
    for step in ordered:
        a, b = median(separate, step), median(merged, step)
        lines.append(f"{step:24s} {a:16.2f} {b:8.2f} {b - a:+20.2f}")
    a, b = median(separate, None), median(merged, None)
    lines.append(f"{'all (process CPU)':24s} {a:16.2f} {b:8.2f} {b - a:+20.2f} ({(b - a) / a:+.1%})")
    ratios = [m[0] / s[0] for s, m in zip(separate, merged)]
    lines.append(f"each round, merged / one by one (the two ran minutes apart at most): "
                 f"{', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
    return lines


def alternated_rounds(sample: Path, merged: Path, codes: list[str], month: str, rounds: int) -> dict[str, list[Sample]]:
    """`rounds` rounds of the counties `codes` of `sample` one by one and of `merged` (one county, `codes[0]`),
    each on a fresh copy of its drop zones (no warehouse or read cache of an earlier run); every second round
    starts with the merged run."""
    samples: dict[str, list[Sample]] = {SEPARATE: [], MERGED: []}
    for round_number in range(rounds):
        for kind in [SEPARATE, MERGED] if round_number % 2 == 0 else [MERGED, SEPARATE]:
            source, counties = (sample, codes) if kind == SEPARATE else (merged, codes[:1])
            run = sample.parent / f"run-{round_number}-{kind}"
            for code in counties:
                shutil.copytree(source / "counties" / code / "raw", run / "counties" / code / "raw")
            started = time.perf_counter()
            samples[kind].append(run_sample(run, month, counties))
            print(f"round {round_number + 1}, {kind}: {samples[kind][-1][0]:.2f} CPU-s "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
            shutil.rmtree(run)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counties", type=int, default=4, help="how many counties to merge (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both, alternated (default 2)")
    args = parser.parse_args(argv)
    start_again_as_a_worker("bench.merged", argv)
    data_dir = cached_province("province")
    if data_dir is None:
        return 2
    month = SCENARIOS["province"].month
    with tempfile.TemporaryDirectory(prefix="fangpin-merged-") as temp:
        sample = province_sample(data_dir, args.counties + 1, Path(temp) / "province")
        warm_up, *codes = sorted(path.name for path in (sample / "counties").iterdir())
        run_counties_here(sample, month, [warm_up])  # imports, great-expectations, plotly.js: not in the figures
        merged = Path(temp) / "merged"
        merge_drop_zones([sample / "counties" / code for code in codes], month, merged / "counties" / codes[0])
        samples = alternated_rounds(sample, merged, codes, month, args.rounds)
    for line in comparison(samples[SEPARATE], samples[MERGED], args.counties):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU per step of a province's counties, run one after the other in this process as a one run's worker runs them.

Why: `make bench` says how long a whole run takes and which stages are largest, but a province county's steps
overlap (two workers, background threads) and the machine drifts within minutes, so a change worth a few percent
of a county is read best here: each step's CPU seconds, county after county, in one process (bench/FINDINGS.md,
sessions 22-27 measured this way with a /tmp harness each time). The first county pays the process's imports and
warm-ups (great-expectations, Dagster, plotly.js) and is left out of the medians; the others cost what each further
county of a one run's worker costs.

    .venv/bin/python -m bench.steps [--counties 5] [--scenario province]

Runs on the inputs `make bench province` generated and cached (`--scenario province-small`: `python -m bench.run
province-small`'s). A step's CPU is the process's during the step (`CountyOutcome.step_cpu`), background threads
included: the quality suites count in the steps they run beside (link, queue, marts), the township workbooks in the
marts and the dashboard, as in the bench's stage table. Polars and DuckDB get the thread pools a one run's worker
gets (its share of the cores, `fangpin.cores`; every core with `--all-cores`). To compare two versions of the
code, run this in each checkout in turn, twice or more each, and compare the medians (the machine drifts between
runs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.ab import province_sample
from bench.run import CACHE_DIR, SCENARIOS, scenario_dir
from fangpin import cores

if TYPE_CHECKING:  # imported when run: Dagster and the code location take seconds to import
    from pipelines.one_run import CountyOutcome

COUNTY_TOTAL = "county (all steps and the warehouse's publishing)"


def run_counties_here(province_dir: Path, month: str, counties: list[str]) -> list[tuple["CountyOutcome", float]]:
    """Each county's outcome (`pipelines.one_run.CountyOutcome`) and the process's CPU seconds for all of it."""
    from pipelines import one_run

    done = []
    for county in counties:
        started = time.process_time()
        outcome = one_run.run_county_of_the_province(province_dir, month, county)
        done.append((outcome, time.process_time() - started))
    return done


def warm_medians(done: list[tuple["CountyOutcome", float]]) -> dict[str, float]:
    """Median CPU seconds per step over the warm counties (all but the first, unless it is the only one), largest
    first, and the county's total under COUNTY_TOTAL."""
    warm = done[1:] or done
    steps = {step for outcome, _ in warm for step in outcome.step_cpu}
    medians = {step: statistics.median(outcome.step_cpu.get(step, 0.0) for outcome, _ in warm) for step in steps}
    ordered = dict(sorted(medians.items(), key=lambda item: (-item[1], item[0])))
    return {COUNTY_TOTAL: statistics.median(cpu for _, cpu in warm), **ordered}


def report(done: list[tuple["CountyOutcome", float]]) -> list[str]:
    """Each county's wall and CPU seconds (and whether it ran whole), then the warm medians per step."""
    lines = [f"{outcome.county}: {outcome.seconds:.2f} s, {cpu:.2f} CPU-s{'' if outcome.ok else ' (failed steps)'}"
             + (" (first: imports and warm-ups, not in the medians)" if i == 0 and len(done) > 1 else "")
             for i, (outcome, cpu) in enumerate(done)]
    medians = warm_medians(done)
    total = medians[COUNTY_TOTAL]
    lines.append(f"median CPU-s per warm county ({max(len(done) - 1, 1)} counties):")
    lines += [f"  {seconds:6.2f}  {seconds / total:4.0%}  {step}" if total else f"  {seconds:6.2f}  {step}"
              for step, seconds in medians.items()]
    return lines


def start_again_as_a_worker(module: str, argv: list[str] | None) -> None:
    """Start this tool again (`python -m module argv`) with a one run's worker's thread pools, unless it has them.

    A one run's worker starts with its share of the cores (fangpin.cores); Polars, imported already, sizes its pool
    once, so the tool starts again as a worker would."""
    if os.environ.get(cores.DUCKDB_THREADS_ENV) is not None:
        return
    from fangpin.instance import side_by_side_runs

    os.execve(sys.executable, [sys.executable, "-m", module, *(sys.argv[1:] if argv is None else argv)],
              os.environ | cores.worker_environment(side_by_side_runs()))


def cached_province(scenario: str) -> Path | None:
    """The data dir of the cached bench province `scenario`, or None (said on stderr) when it was never generated."""
    data_dir = scenario_dir(SCENARIOS[scenario], CACHE_DIR) / "data"
    if (data_dir / "counties").is_dir():
        return data_dir
    print(f"no bench province in {data_dir}: run `make bench province` (or `python -m bench.run "
          f"{scenario}`) once first", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counties", type=int, default=5, help="the first N counties (default 5: one warm-up)")
    parser.add_argument("--scenario", choices=["province", "province-small"], default="province")
    parser.add_argument("--all-cores", action="store_true",
                        help="Polars' and DuckDB's thread pools on every core, not a one run worker's share")
    args = parser.parse_args(argv)
    if not args.all_cores:
        start_again_as_a_worker("bench.steps", argv)
    scenario = SCENARIOS[args.scenario]
    data_dir = cached_province(scenario.name)
    if data_dir is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="fangpin-steps-") as temp:
        province = province_sample(data_dir, args.counties, Path(temp) / "province")
        counties = sorted(path.name for path in (province / "counties").iterdir())
        for line in report(run_counties_here(province, scenario.month, counties)):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

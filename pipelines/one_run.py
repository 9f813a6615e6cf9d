"""The province in one run: every county's month computed by the same asset code, without a Dagster run per county.

Why: a Dagster run per county partition writes ~430 events and sets up its run and resources; for the bench's 100
counties the partitions took 412 s and 769 CPU-s, this one run 354 s and 664 CPU-s, and 3.3 instead of 5.3 GB
(bench/FINDINGS.md, session 11). One Dagster run (`province_one_run`) hands the counties to worker processes, each of
which calls the county asset graph *directly* (Dagster's direct invocation: the asset bodies run with a context and
the resources, outside any run), county after county; then the provincial marts. The asset bodies are the
partitions' own, so both ways write the same tables (tests/test_province.py).

In the UI the run records each county asset as materialised in its month x county partition (with the metadata its
body gave, `materializations`), so partitions and lineage show the counties; what it does not give is a run per
county with its step logs and asset checks (each county's outcome is one line of the run's log instead: done with
its steps' seconds, or what failed and why). Use the partitions (`province_month`, `county_month`) when each
county's checks and logs in the UI matter more than the minutes.
"""
from __future__ import annotations

import atexit
import inspect
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Iterator

import dagster as dg

from fangpin import cores, framestack
from fangpin.collector import loading_modules
from pipelines.progress import AssetLines, clerk_message
from pipelines.resources import FangpinData, county_dir

DONE = "完成 done"  # what a county's line says when its month went through (the bench counts these lines)


@dataclass
class CountyOutcome:
    """What became of one county's month: seconds per step, the assets materialised (with the metadata their bodies
    gave), the steps that failed (with why) and those skipped because of them.

    `step_cpu`: the process's CPU seconds (user + system, every thread) during each step, so background work (the
    quality suites, the workbooks' writer) counts in the steps it overlaps, as in `bench.steps`, which reads it."""

    county: str
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    step_cpu: dict[str, float] = field(default_factory=dict)
    materialized: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def line(self) -> str:
        if self.ok:
            steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in self.steps.items())
            return f"{self.county}: {DONE} ({self.seconds:.1f} s; {steps})"
        failed = "；".join(f"{step}：{why}" for step, why in self.failed.items())
        skipped = f"；未运行 skipped: {'、'.join(self.skipped)}" if self.skipped else ""
        return f"{self.county}: 失败 failed — {failed}{skipped} ({self.seconds:.1f} s)"


def invocation_order(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The asset definitions in an order where each comes after every definition it depends on (graphlib)."""
    producer = {key: a for a in assets for key in a.keys}
    graph = TopologicalSorter({a: {producer[k] for k in a.dependency_keys if k in producer and producer[k] is not a}
                               for a in assets})
    return list(graph.static_order())


def run_county(assets: list[dg.AssetsDefinition], province_dir: Path, month: str, county: str) -> CountyOutcome:
    """One county's month: every asset of `assets` invoked directly, in dependency order, as a Dagster run would
    execute them: a step that raises, or whose blocking check fails, is failed and everything downstream of it
    skipped, while independent steps go on; the warehouse's working copy is published at the end either way, like
    the run resource's teardown (fangpin.warehouse.RunWarehouse)."""
    started = time.perf_counter()
    outcome = CountyOutcome(county)
    key = dg.MultiPartitionKey({"month": month, "county": county})
    resource = FangpinData(data_dir=str(county_dir(province_dir, county)))
    values: dict[dg.AssetKey, object] = {}
    broken: set[dg.AssetKey] = set()
    try:
        with dg.build_asset_context(partition_key=key, resources={"fangpin": resource},
                                    instance=_invocation_instance()) as context:
            lines = AssetLines(county=county)
            context.log.addFilter(lines)
            for asset in invocation_order(assets):
                name = lines.step = asset.node_def.name
                if asset.dependency_keys & broken:
                    outcome.skipped.append(name)
                    broken |= set(asset.keys)
                    continue
                step_started, cpu_started = time.perf_counter(), time.process_time()
                try:
                    produced, metadata = _invoke(asset, context, values)
                except Exception as error:  # the step fails; the county goes on with what does not depend on it
                    outcome.failed[name] = _message(error)
                    broken |= set(asset.keys)
                    produced, metadata = {}, {}
                outcome.steps[name] = seconds = time.perf_counter() - step_started
                outcome.step_cpu[name] = time.process_time() - cpu_started
                values |= produced
                outcome.materialized |= {asset_key.to_user_string(): {**meta, "step_seconds": round(seconds, 2)}
                                         for asset_key, meta in metadata.items()}
    except Exception as error:  # publishing the warehouse (the resource's teardown) failed: the county did not run
        outcome.failed["warehouse"] = _message(error)
    outcome.seconds = time.perf_counter() - started
    return outcome


@lru_cache(maxsize=1)
def _invocation_instance() -> dg.DagsterInstance:
    """The Dagster instance of every county's asset context in this process: an ephemeral one (in memory), as
    `build_asset_context` makes when given none, but made once, not once a county (~39 ms each time). Direct
    invocation records nothing in it; the run's own instance records each county (`materializations`)."""
    return dg.DagsterInstance.ephemeral()


def build_province_marts(province_dir: Path, month: str, failed: tuple[str, ...] = ()) -> dg.MaterializeResult:
    """The provincial marts of the month (the `province_risk` asset's body on the province's warehouse), without the
    counties that failed in this run: their warehouses may hold an earlier run's figures."""
    from assets.province import province_marts

    resource = FangpinData(data_dir=str(province_dir))
    with dg.build_asset_context(partition_key=month, resources={"fangpin": resource}) as context:
        context.log.addFilter(AssetLines("province_risk"))
        return province_marts(context, context.resources.fangpin, month, failed)


def _invoke(asset: dg.AssetsDefinition, context, values: dict) -> tuple[dict[dg.AssetKey, object], dict]:
    """Call one asset body with its upstream values; returns the values it produced and the metadata of each asset
    it materialised, by asset key. A failed blocking check raises, as it fails the step in a run."""
    parameters = inspect.signature(asset.op.compute_fn.decorated_fn).parameters
    any_name = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())  # warehouse_month's lists
    inputs = {name: values[key] for name, key in asset.keys_by_input_name.items()
              if name in parameters or (any_name and key in values)}
    result = asset(context, **inputs)
    produced, metadata = {}, {}
    for item in (result if inspect.isgenerator(result) else [result]):
        if isinstance(item, dg.AssetCheckResult):
            _raise_if_blocking(asset, item)
        elif isinstance(item, dg.Output):
            produced[asset.keys_by_output_name[item.output_name]] = item.value
            metadata[asset.keys_by_output_name[item.output_name]] = dict(item.metadata)
        elif isinstance(item, dg.MaterializeResult):
            metadata[item.asset_key or asset.key] = dict(item.metadata or {})
        else:  # a plain value; its metadata, if any, came by context.add_output_metadata
            produced[asset.key] = item
            metadata[asset.key] = dict(context.op_execution_context.get_output_metadata("result") or {})
    return produced, metadata


def materializations(outcome: CountyOutcome, month: str) -> list[dg.AssetMaterialization]:
    """The county's assets as materialised in its month x county partition, as a run of it would record them, so
    the UI's partitions and lineage show the counties of a one run too (34 events a county, against ~430 a run)."""
    partition = str(dg.MultiPartitionKey({"month": month, "county": outcome.county}))
    return [dg.AssetMaterialization(asset_key=dg.AssetKey.from_user_string(name), partition=partition,
                                    metadata=metadata) for name, metadata in outcome.materialized.items()]


def _raise_if_blocking(asset: dg.AssetsDefinition, check: dg.AssetCheckResult) -> None:
    blocking = {(spec.asset_key, spec.name) for spec in asset.check_specs if spec.blocking}
    if not check.passed and (check.asset_key, check.check_name) in blocking:
        raise dg.Failure(description=f"检查未通过 blocking check failed: {check.asset_key.to_user_string()} · "
                                     f"{check.check_name}")


def _message(error: Exception) -> str:
    """fangpin's own message for a clerk (dg.Failure's description), else the error's last line."""
    if isinstance(error, dg.Failure) and error.description:
        return error.description
    return clerk_message(traceback.format_exception_only(error)[-1])


def run_counties(province_dir: Path, month: str, sizes: dict[str, int], workers: int) -> Iterator[CountyOutcome]:
    """Every county of `sizes` (county -> the month's drop-zone bytes), biggest first, in `workers` processes
    (spawned: Polars in a forked worker can hang); each worker imports once and takes the next county when done.

    Each county's outcome is yielded as soon as it is done, not when the last is: the run's log and the UI then
    show each county when it finishes, an interrupted run has recorded the counties it completed, and recording
    them (34 events a county, ~5 s for 100 counties) overlaps the counties still running instead of following them.
    """
    order = sorted(sizes, key=lambda c: (-sizes[c], c))
    if workers <= 1 or len(order) <= 1:
        for county in order:
            yield run_county_of_the_province(province_dir, month, county)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_without_teardown)
    try:
        with cores.spawning_workers(workers):  # the pool spawns its workers at the submits: each its cores' share
            futures = [pool.submit(run_county_of_the_province, province_dir, month, county) for county in order]
        for future in as_completed(futures):
            yield future.result()
    finally:  # the run interrupted: the counties in progress finish (and publish), the others do not start
        pool.shutdown(wait=True, cancel_futures=True)


def _exit_without_teardown() -> None:
    """A worker ends, once its output is flushed, without the interpreter's teardown, as the CLI does
    (fangpin.cli.entry): DuckDB 2.0's nanobind bindings print dozens of spurious "leaked" lines there (86 for two
    workers), between the counties' lines and the province's summary. Its results are already handed back."""
    def exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    atexit.register(exit_now)


def run_county_of_the_province(province_dir: Path, month: str, county: str) -> CountyOutcome:
    """One county with the province's county assets (a worker's task: imported once per worker process), its
    frames in one chunk of the frame stack (fangpin.framestack: the first county's imports are deep)."""
    def county_run() -> CountyOutcome:
        with loading_modules():  # a worker's first county imports the code location: no full collections
            from pipelines.province import COUNTY_ASSETS

        print(f"▶ {county}", file=sys.stderr, flush=True)  # its assets' lines follow (progress.AssetLines)
        return run_county(COUNTY_ASSETS, province_dir, month, county)

    return framestack.with_room(county_run)

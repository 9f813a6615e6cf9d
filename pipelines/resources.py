"""Resources, configured once in `Definitions`: where the data lives and the one warehouse writer."""

import os
import time
from concurrent.futures import Future, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import dagster as dg
import duckdb
import polars as pl
from pydantic import PrivateAttr

from assets.partitions import COUNTY_TAG, MONTH_TAG, PARTITION_TAG
from fangpin import background, quality, reading, warehouse
from fangpin.config import PROJECT_ROOT

COUNTIES_FOLDER = "counties"


def county_dir(province_dir: Path, county: str) -> Path:
    """A province's county: a data directory of its own (drop zone, warehouse, exports), one writer per file."""
    return Path(province_dir) / COUNTIES_FOLDER / county


def _run_steps(context: dg.InitResourceContext) -> set[str]:
    """The steps this run executes (an asset's step is named after it, e.g. data_quality), from its execution plan:
    the steps it was asked to execute, else every step of its job (a whole job, an asset selection, or a
    re-execution of some steps alike). Empty outside a run."""
    run, instance = context.run, context.instance
    if run is None or instance is None or not run.execution_plan_snapshot_id:
        return set()
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return set(plan.step_keys_to_execute or [step.key for step in plan.steps])


def _run_month(run: dg.DagsterRun | None) -> str | None:
    """The month of a run's partition (month, or month x county); None for a run without one."""
    tags = run.tags if run else {}
    return tags.get(MONTH_TAG) or tags.get(PARTITION_TAG)


class SuiteResults(NamedTuple):
    """The quality suites' results, the seconds they took, and whether they ran in the background beside the later
    steps (so the data_quality step's own duration in the UI is not their cost)."""

    results: pl.DataFrame
    seconds: float
    in_background: bool


def default_data_dir() -> str:
    """`FANGPIN_DATA_DIR`, else the project's `data/` folder."""
    return os.environ.get("FANGPIN_DATA_DIR", str(PROJECT_ROOT / "data"))


class FangpinData(dg.ConfigurableResource):
    """The data directory: `raw/` drop zone, `warehouse/fangpin.duckdb`, `exports/`; for a province, one such
    directory per county under `counties/<county>/`, chosen by the run's county partition.

    Set up once per run (the in-process executor runs every step in one process): every step's writes go to the
    run's working copy of the warehouse, which becomes the live file when the run ends (fangpin.warehouse.RunWarehouse).
    """

    data_dir: str
    _run: warehouse.RunWarehouse | None = PrivateAttr(default=None)
    _county: str | None = PrivateAttr(default=None)
    _roster_read: tuple[str, Future] | None = PrivateAttr(default=None)  # (month, read_roster's result to come)
    _suites_run: tuple[str, Future] | None = PrivateAttr(default=None)  # (month, the quality suites' results to come)
    _steps: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def root(self) -> Path:
        base = Path(self.data_dir).resolve()
        return county_dir(base, self._county) if self._county else base

    @property
    def warehouse_path(self) -> Path:
        return warehouse.warehouse_path(self.root)

    def exports_dir(self, month: str) -> Path:
        return self.root / "exports" / month

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        tags = context.run.tags if context.run else {}
        self._county = tags.get(COUNTY_TAG)
        self._run = warehouse.RunWarehouse(self.root)
        self._steps = steps = frozenset(_run_steps(context))
        # great-expectations' import (quality.start_loading_great_expectations) overlaps the first steps instead
        # of delaying data_quality, but not the roster's parse: the two side by side fought for the GIL (the
        # parse's Python between calamine calls waited on the import; a 1M-person county's parse ended ~2 s
        # later). So with a roster to read it starts once the read is over, overlapping the roster's validation.
        # (The whole run's gain is within the machine's noise: bench/README.md, session 13.)
        warm_up = quality.start_loading_great_expectations if "data_quality" in steps else None
        month = _run_month(context.run)
        if month and "roster" in steps:
            self._roster_read = (month, background.roster_read(self.root, month, then=warm_up))
        elif warm_up is not None:
            warm_up()

    def roster_files(self, month: str) -> reading.RosterFiles:
        """The month's roster files as `reading.read_roster` returns them: the read the run started at its setup, or
        the CLI before it (fangpin.background; waited for, its error, if any, raised here), else a read now (outside
        a run, or for another month)."""
        started, self._roster_read = self._roster_read, None
        if started is not None and started[0] == month:
            return started[1].result()
        return reading.read_roster(self.root, month)

    def start_quality_suites(self, month: str) -> None:
        """Start the month's expectation suites (`quality.run_list_suites`) in a background thread, when this run has
        a data_quality step; warehouse_month calls it once the month is committed.

        Why: great-expectations is ~1.5 s of mostly single-threaded Python for a 1M-person county, while the steps
        after warehouse_month (linkage, the queue, the workbooks: DuckDB and Polars) keep ~1.3 of two cores busy.
        data_quality runs last among them (its `dagster/priority` is -1) and only collects the results. The suites
        read a snapshot taken here, in the calling step: exactly what warehouse_month committed, whatever the later
        steps write meanwhile, so the results are those of running them in their own step.
        """
        if self._run is None or "data_quality" not in self._steps:
            return
        with self._run.writer() as con:
            snapshot = con.cursor()
        try:
            snapshot.execute("BEGIN TRANSACTION")
            snapshot.execute(quality.SNAPSHOT_QUERY).fetchall()  # a read starts the transaction: its snapshot is now
        except duckdb.Error:  # not warehouse_month's failure (its month is committed): data_quality's step runs the
            snapshot.close()  # suites itself and reports what fails there
            return

        def suites() -> SuiteResults:
            began = time.perf_counter()
            try:
                return SuiteResults(quality.run_list_suites(snapshot, month), time.perf_counter() - began, True)
            finally:
                snapshot.close()

        self._suites_run = (month, background.in_background("fangpin-quality-suites", suites))

    def quality_results(self, con: duckdb.DuckDBPyConnection, month: str) -> SuiteResults:
        """The month's suite results: those the run started after warehouse_month (waited for), else run now."""
        started, self._suites_run = self._suites_run, None
        if started is not None and started[0] == month:
            return started[1].result()
        began = time.perf_counter()
        return SuiteResults(quality.run_list_suites(con, month), time.perf_counter() - began, False)

    def _wait_for_suites(self) -> None:
        """Let suites still running finish before the run's connection closes (closing it closes their cursor)."""
        if self._suites_run is not None:
            wait([self._suites_run[1]])

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """The run is over (succeeded or failed): what its steps committed becomes live, all at once. A step that
        failed rolled its own transaction back, so a failed run publishes only whole steps."""
        self._wait_for_suites()
        if self._run is not None:
            self._run.publish()  # the copy was made owner-only; the rename keeps its mode

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writing connection: to the run's working copy inside a run, to the live file outside one
        (waits a bounded time for another writer, then says who holds it)."""
        if self._run is None:
            with warehouse.writer(self.root) as con:
                yield con
            return
        with self._run.writer() as con:
            try:
                yield con
            except BaseException:  # the run's connection is about to close: first let the suites' reads end
                self._wait_for_suites()
                raise

"""Resources, configured once in `Definitions`: where the data lives and the one warehouse writer."""

import os
import time
from concurrent.futures import Future, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, TypeVar

import dagster as dg
import duckdb
import polars as pl
from pydantic import PrivateAttr

from assets.partitions import COUNTY_TAG, MONTH_TAG, PARTITION_TAG
from fangpin import background, ingest, quality, readcache, reading, warehouse
from fangpin.config import PROJECT_ROOT

COUNTIES_FOLDER = "counties"
T = TypeVar("T")


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
    _ahead: dict[str, tuple[str, Future]] = PrivateAttr(default_factory=dict)  # step -> (month, its work started early)
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
        # (The whole run's gain is within the machine's noise: bench/FINDINGS.md, session 13.)
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

    def start_ahead(self, step: str, month: str, prepare: Callable[[], Callable[[], T]]) -> None:
        """Start the work of `step` (an asset's step name) for `month` in a background thread now, when this run has
        that step; the step collects its result (`collect`). Called by an earlier step once what the work reads is
        committed.

        `prepare()` runs here, in the calling step (e.g. reading what the work needs through the run's connection,
        which one thread uses at a time), and returns the work itself. If it fails, nothing is started: the step
        does all of it itself and reports what fails there, in its own step, not in the one that called this.
        """
        if step not in self._steps:
            return
        try:
            work = prepare()
        except Exception:  # noqa: BLE001 - the step does the work itself and reports the error there
            return
        self._ahead[step] = (month, background.in_background(f"fangpin-{step}", work))

    def collect(self, step: str, month: str, work: Callable[[], T]) -> tuple[T, bool]:
        """The result of `step`'s work for `month` started early (`start_ahead`; waited for, its error raised here),
        and True; else `work()` now, and False."""
        started = self._ahead.pop(step, None)
        if started is not None and started[0] == month:
            return started[1].result(), True
        return work(), False

    def start_roster_write(self, month: str, roster: ingest.RosterMonth) -> None:
        """Begin warehouse_month's transaction now and write the roster's tables into it in a background thread,
        when this run has a warehouse_month step; the roster step calls it with the month's validated roster.

        Why: the department lists' validation, the step in between, is mostly single-threaded Python (a
        1,000,000-person county: 0.87 of its 0.97 s left a core idle), while writing a million persons and their
        households is DuckDB compressing them for ~1.6-1.8 CPU-s (bench/FINDINGS.md, sessions 16 and 28).
        warehouse_month then finishes the same transaction (`roster_written`), so the month is still written whole
        or not at all: if it never runs (a list step failed), the transaction is never committed and closing the
        run's connection rolls it back. No other step writes in between: every step that writes the warehouse comes
        after warehouse_month.
        """
        if self._run is None:
            return

        def prepare() -> Callable[[], dict[str, int]]:
            with self._run.writer() as con:  # the run's one connection, opened now if it is not yet
                con.execute("BEGIN TRANSACTION")
            return lambda: ingest.write_roster(con, month, roster)

        self.start_ahead("warehouse_month", month, prepare)

    def roster_written(self, month: str) -> dict[str, int] | None:
        """The roster's tables `start_roster_write` wrote (waited for; its error raised here) inside the transaction
        it began, which the caller finishes; None when it did not start (nothing begun)."""
        written, _ = self.collect("warehouse_month", month, lambda: None)
        return written

    def start_quality_suites(self, month: str) -> None:
        """Start the month's expectation suites (`quality.run_list_suites`) in a background thread, when this run has
        a data_quality step; warehouse_month calls it once the month is committed.

        Why: great-expectations is ~1.5 s of mostly single-threaded Python for a 1M-person county, while the steps
        after warehouse_month (linkage, the queue, the marts: DuckDB and Polars) keep ~1.3 of two cores busy.
        data_quality runs after them (its `dagster/priority` is -1) and only collects the results. The suites
        read a snapshot taken here, in the calling step: exactly what warehouse_month committed, whatever the later
        steps write meanwhile, so the results are those of running them in their own step.
        """
        if self._run is not None:
            self.start_ahead("data_quality", month, lambda: _suites_on_snapshot(self._run, month))

    def quality_results(self, con: duckdb.DuckDBPyConnection, month: str) -> SuiteResults:
        """The month's suite results: those the run started after warehouse_month (waited for), else run now."""
        began = time.perf_counter()
        results, started = self.collect("data_quality", month, lambda: quality.run_list_suites(con, month))
        return results if started else SuiteResults(results, time.perf_counter() - began, False)

    def _wait_for_background(self) -> None:
        """Let work started early finish before the run's connection closes (closing it closes the suites' cursor)."""
        wait([future for _, future in self._ahead.values()])

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """The run is over (succeeded or failed): what its steps committed becomes live, all at once. A step that
        failed rolled its own transaction back, so a failed run publishes only whole steps. A run the clerk
        interrupted (Ctrl-C, or terminated from the UI) publishes nothing: the warehouse stays as before it, as
        after a power cut, instead of a queue from this run beside risk marts from the last one."""
        self._wait_for_background()
        readcache.wait_for_writes()  # the read cache's entries stored (long done by now) before the process may end
        if self._run is None:
            return
        if _interrupted(context):
            self._run.discard()
        else:
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
                self._wait_for_background()
                raise


def is_interruption(cls_name: str | None, message: str) -> bool:
    """An error that says the run was interrupted: Dagster's (Ctrl-C or a terminate outside a query), Python's, or
    DuckDB's when the interrupt arrived inside a query ("Query interrupted")."""
    return cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt", "InterruptException") \
        or "Query interrupted" in message


def _interrupted(context: dg.InitResourceContext) -> bool:
    """Whether a step of this run failed because the run was interrupted (its failure event's error, or a cause)."""
    instance, run = context.instance, context.run
    if instance is None or run is None:
        return False
    run_id = run.run_id
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = record.dagster_event.step_failure_data.error if record.dagster_event else None
        while error is not None:
            if is_interruption(error.cls_name, error.message or ""):
                return True
            error = error.cause or error.context
    return False


def _suites_on_snapshot(run: warehouse.RunWarehouse, month: str) -> Callable[[], SuiteResults]:
    """The quality suites of `month` on a snapshot of the run's warehouse taken now (a cursor in a transaction that
    has read): what they judge is what is committed at this moment, whatever later steps write."""
    with run.writer() as con:
        snapshot = con.cursor()
    try:
        snapshot.execute("BEGIN TRANSACTION")
        snapshot.execute(quality.SNAPSHOT_QUERY).fetchall()  # a read starts the transaction: its snapshot is now
    except BaseException:
        snapshot.close()
        raise

    def suites() -> SuiteResults:
        began = time.perf_counter()
        try:
            return SuiteResults(quality.run_list_suites(snapshot, month), time.perf_counter() - began, True)
        finally:
            snapshot.close()

    return suites

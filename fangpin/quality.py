"""Dataset-level data quality: great-expectations suites per department list and for the roster, every month.

Row validation (fangpin.validate) decides which rows are usable; this module judges each department's *file* as a
whole, so the joint-meeting office can tell a department "92% of your ID numbers were usable, 95% is required".
That is why a list's frame has one row per row READ, accepted and rejected alike: a duplicate the validator dropped
is still a fault of the department's file.

The suites are configuration (schemas/expectations.yaml); results land in quality.results (schemas/quality.sql) and
in fangpin's own HTML fragment. GE's Data Docs are not used: they load CSS/JS from CDNs and county networks are offline.
great-expectations has no Polars backend, so each month-sized frame is converted to pandas (small: one list, one month).
"""
from __future__ import annotations

import html
import os
import threading
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator

import duckdb
import polars as pl

from fangpin import deferred, framestack
from fangpin.collector import loading_modules
from fangpin.config import PROJECT_ROOT, check_month, read_yaml, registry
from fangpin.ordering import ROSTER_ORDER, in_order
from fangpin.warehouse import replace_month

if TYPE_CHECKING:
    import pandas as pd

# great-expectations must never reach the network (county networks are offline): no usage analytics.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SUITES_FILE = PROJECT_ROOT / "schemas" / "expectations.yaml"
QUALITY_SQL = PROJECT_ROOT / "schemas" / "quality.sql"
ROSTER_SUITE = "roster"
NOT_A_PERSON = ("total_row",)  # rejected rows that are not person records (合计 rows): not judged
EXAMPLES = 3  # offending rows named in a sentence

RESULT_SCHEMA = {
    "month": pl.String, "suite": pl.String, "department": pl.String, "check_name": pl.String,
    "expectation": pl.String, "column": pl.String, "success": pl.Boolean, "observed": pl.String,
    "threshold": pl.String, "description_zh": pl.String, "rows_evaluated": pl.Int64,
    "unexpected_count": pl.Int64, "examples": pl.String,
}
# Keys of an expectation's YAML entry that are fangpin's, not arguments of the GE expectation.
_OWN_KEYS = ("expectation", "label", "frame", "enabled")


# --- configuration -------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def suites_config() -> dict:
    """schemas/expectations.yaml, parsed once."""
    return read_yaml(SUITES_FILE)


def _merge(base: dict, layer: dict | None) -> dict:
    """`base` with each expectation's arguments updated from `layer` (an override names only what it changes)."""
    merged = {name: dict(spec) for name, spec in base.items()}
    for name, change in (layer or {}).items():
        merged.setdefault(name, {}).update(change or {})
    return merged


def list_suite(list_key: str) -> dict[str, dict]:
    """The expectations of one list: default, then its kind (risk/eligibility), then the list's own overrides."""
    config = suites_config()["lists"]
    spec = registry().lists.get(list_key)
    kind = spec.kind if spec else None
    merged = _merge(config["default"], config.get("by_kind", {}).get(kind))
    merged = _merge(merged, config.get("by_list", {}).get(list_key))
    return {name: body for name, body in merged.items() if body.get("enabled", True)}


def roster_suite() -> dict[str, dict]:
    return {name: body for name, body in suites_config()["roster"].items() if body.get("enabled", True)}


# --- the quality frames (DuckDB SQL: one query per month, no per-row Python) -----------------------------------------

ROW = "_row"  # each judged row's position in its frame: GE names offending rows by it (`_validate`)


def _row_ref(frame: pl.DataFrame) -> pl.Expr:
    """Where a clerk finds a row: '低保.xlsx 工作表“Sheet1”第5行' (file name without the drop-zone folders), or
    '户编号H001' for a frame of households. Built only for the rows a result names (`_name_examples`): for every
    row of a roster it was most of the frames' query (300,000 persons: 0.15-0.2 of 0.2-0.3 CPU-s)."""
    if "source_file" not in frame.columns:
        return pl.lit("户编号") + pl.col("household_id")
    return pl.concat_str(
        pl.col("source_file").str.extract(r"([^/\\]+)$", 1).fill_null(""), pl.lit(" 工作表“"),
        pl.col("sheet").fill_null(""), pl.lit("”第"), pl.col("row_number").cast(pl.String).fill_null("?"),
        pl.lit("行"))


# Touches every table the suites read, so that a transaction begun before it reads them as they are now (DuckDB takes
# a transaction's snapshot at its first read of a table, not at BEGIN). tests/test_quality.py records the tables
# `run_list_suites` reads and fails when one is missing here.
SNAPSHOT_QUERY = """SELECT (SELECT count(*) FROM staging.list_rows WHERE false), (SELECT count(*) FROM quarantine.rejected_rows
    WHERE false), (SELECT count(*) FROM roster.persons WHERE false), (SELECT count(*) FROM roster.households WHERE false)"""


def list_frames(con: duckdb.DuckDBPyConnection, month: str) -> pl.DataFrame:
    """Every row read this month for every registered list, in the shape the list suites judge.

    Accepted rows come from staging.list_rows; rejected rows (quarantine.rejected_rows, one person row may carry
    several reasons) are folded to one row each. File-level problems and total rows are not person rows.
    """
    keys = list(registry().lists)
    month_start = f"{check_month(month)}-01"
    query = f"""
    WITH accepted AS (
        SELECT list_key, source_file, sheet, row_number, TRUE AS id_valid, id_number AS person_key,
               event_date, amount,
               CASE WHEN township IS NOT NULL THEN TRUE
                    WHEN nullif(trim(township_raw), '') IS NOT NULL OR nullif(trim(division_code), '') IS NOT NULL
                    THEN FALSE END AS township_known
        FROM staging.list_rows WHERE month = $month AND list_key IN (SELECT unnest($keys))
    ), rejected AS (
        SELECT list_key, source_file, sheet, row_number,
               NOT bool_or(starts_with(reason_code, 'id_')) AS id_valid,
               CASE WHEN bool_or(starts_with(reason_code, 'id_')) THEN NULL ELSE any_value(id_number) END
                   AS person_key,
               NULL::DATE AS event_date, NULL::DOUBLE AS amount, NULL::BOOLEAN AS township_known
        FROM quarantine.rejected_rows
        WHERE month = $month AND list_key IN (SELECT unnest($keys)) AND row_number IS NOT NULL
          AND reason_code NOT IN (SELECT unnest($not_person))
        GROUP BY list_key, source_file, sheet, row_number
    )
    SELECT list_key, split_part(list_key, '.', 1) AS department, id_valid, person_key, event_date, amount,
           township_known,
           event_date >= DATE '{month_start}' AND event_date < DATE '{month_start}' + INTERVAL 1 MONTH AS in_month,
           source_file, sheet, row_number
    FROM (SELECT * FROM accepted UNION ALL BY NAME SELECT * FROM rejected)
    ORDER BY list_key, source_file, sheet, row_number
    """
    return con.sql(query, params={"month": month, "keys": keys, "not_person": list(NOT_A_PERSON)}).pl()


def roster_frames(con: duckdb.DuckDBPyConnection, month: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(persons, households) of the month's roster, the frames the roster suite judges.

    A roster row rejected for another reason than its 户编号 (household number: missing, or digits lost) keeps a
    placeholder household_id: its household number was not the fault, so it is not judged for it.

    Persons in roster order (file, sheet, row), households by household number: the order of their positions in
    GE's results. Validation writes roster.persons in that order, and roster.households in this one, so (with no
    rejected row, most months) the rows are only checked, not sorted: sorting a 300,000-person county in DuckDB was
    half of this function's 0.12-0.14 CPU-s (bench/FINDINGS.md, session 24), its 87,792 households 8 of 17 ms
    (session 32).
    """
    accepted = con.sql("""
        SELECT TRUE AS id_valid, id_number AS person_key, household_id, source_file, sheet, row_number
        FROM roster.persons WHERE month = $month
    """, params={"month": month}).pl()
    rejected = con.sql("""
        SELECT NOT bool_or(starts_with(reason_code, 'id_')) AS id_valid,
               CASE WHEN bool_or(starts_with(reason_code, 'id_')) THEN NULL ELSE any_value(id_number) END
                   AS person_key,
               CASE WHEN bool_or(starts_with(reason_code, 'roster_household_')) THEN NULL ELSE '(未判断)' END
                   AS household_id,
               source_file, sheet, row_number
        FROM quarantine.rejected_rows
        WHERE month = $month AND list_key = 'roster' AND row_number IS NOT NULL
          AND reason_code NOT IN (SELECT unnest($not_person))
        GROUP BY source_file, sheet, row_number
    """, params={"month": month, "not_person": list(NOT_A_PERSON)}).pl()
    persons = pl.concat([accepted, rejected.cast(accepted.schema)])
    if rejected.height or not in_order(persons, ROSTER_ORDER):  # roster.persons is written in roster order
        persons = persons.sort(*ROSTER_ORDER, nulls_last=True, maintain_order=True)
    households = con.sql("""
        SELECT household_size, a38_per_capita, township, household_id
        FROM roster.households WHERE month = $month
    """, params={"month": month}).pl()
    if not in_order(households, ("household_id",)):  # written in that order (fangpin.households): only checked
        households = households.sort("household_id", maintain_order=True)
    return persons, households


# --- great-expectations ----------------------------------------------------------------------------------------------

# Imported by great-expectations' KL-divergence expectation, which its import loads with every other core expectation
# and which no suite here uses: 2.23-2.36 -> 1.48-1.64 s for the import (bench/FINDINGS.md, session 16).
GE_UNUSED_IMPORTS = ("scipy.stats", "altair")


@lru_cache(maxsize=1)
def _batch_definition():
    """One ephemeral GE context for the process (building one per suite would cost more than validating).

    Imported lazily: great-expectations takes seconds to import and Dagster loads this module's callers at startup;
    and without the modules only an unused expectation needs (`GE_UNUSED_IMPORTS`, imported if anything uses them).
    """
    deferred.import_on_use(GE_UNUSED_IMPORTS)
    with loading_modules():  # its import and the context's: no full collections
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GE fingerprints every in-memory frame below HASH_THRESHOLD bytes (a hash of every cell, twice per
        # validation) only to label the batch in its stores, which this ephemeral context does not keep. For a
        # 300,000-person county the roster's fingerprints took 0.7-0.9 s of the 2.0-2.3 s of all suites; with a
        # threshold of 0 no frame is fingerprinted, and the results are the same (tests/test_quality.py).
        pandas_execution_engine.HASH_THRESHOLD = 0
        context = gx.get_context(mode="ephemeral")
        context.enable_analytics(False)
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_pandas("fangpin_quality")
        return source.add_dataframe_asset("month_frame").add_batch_definition_whole_dataframe("whole")


_CONTEXT_LOCK = threading.Lock()  # the warm-up thread and data_quality must not build two contexts at once


def _shared_batch_definition():
    with _CONTEXT_LOCK:
        return _batch_definition()


def start_loading_great_expectations() -> threading.Thread:
    """Import great-expectations and build its context in a background thread, early in a run.

    The import is ~1.5 s of pure Python on the bench machine (2.2-2.7 s before `GE_UNUSED_IMPORTS` were deferred),
    paid in full inside data_quality. Started early, it overlaps earlier steps instead; when in a run is the run
    resource's choice (`pipelines.resources.FangpinData`: once the roster's files are read, not beside their parse).
    A failure here is ignored: data_quality then builds the context itself and reports any error as usual.
    """
    def warm_up() -> None:
        try:
            framestack.with_room(_shared_batch_definition)  # a deep import: see fangpin.framestack
        except Exception:  # noqa: BLE001 - data_quality will raise it where the run can report it
            _batch_definition.cache_clear()

    thread = threading.Thread(target=warm_up, name="fangpin-great-expectations-warm-up", daemon=True)
    thread.start()
    return thread


def _expectation(spec: dict):
    """The GE expectation object for one YAML entry (type name -> class, other keys -> arguments)."""
    import great_expectations as gx

    class_name = "".join(part.capitalize() for part in spec["expectation"].split("_"))
    arguments = {key: value for key, value in spec.items() if key not in _OWN_KEYS}
    return getattr(gx.expectations, class_name)(**arguments)


def _judged(frame: pl.DataFrame, checks: dict[str, dict]) -> pl.DataFrame:
    """Only the columns the expectations name, plus each row's position (`ROW`): every column is converted to pandas,
    so a column no expectation reads is work for nothing (at roster scale, hundreds of thousands of texts)."""
    named = {ROW}
    for spec in checks.values():
        named.update(spec[key] for key in ("column", "column_A", "column_B") if key in spec)
        named.update(spec.get("column_list", ()))
    return frame.with_row_index(ROW).select(c for c in (ROW, *frame.columns) if c in named)


def _as_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """The frame as GE's pandas engine judges it, every integer column as Int64.

    GE compares a column's values with a range in one vectorised step only when its numpy dtype equals `int` or
    `float` (int64, float64); any other width (the warehouse's INTEGER is int32) falls back to a Python call per row:
    for a 300,000-person county, 87,792 calls on household_size alone."""
    return frame.with_columns(pl.col(pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32)
                              .cast(pl.Int64)).to_pandas()


_VALIDATION_LOCK = threading.Lock()  # one validation at a time: it patches three GE classes (below)


@contextmanager
def _configurations_built_once() -> Iterator[None]:
    """Within one validation, each GE expectation builds its `configuration` once instead of every time it is asked,
    and each configuration its expectation object (`to_domain_obj`) once.

    GE 1.x rebuilds an expectation's configuration (a pydantic dump, a class-name conversion, a new object) on every
    read of the property, ~130 reads per expectation while it plans the metrics: 13,082 builds for a province
    county's 103 expectations, a third of the suites' time. And for each metric it plans (~12 per expectation) it
    turns a configuration back into a new expectation object, whose configuration is then built again: keeping the
    configurations per expectation object alone still left 1,545 builds (0.38 s of a province county's 1.8 s of
    suites, profiled; bench/FINDINGS.md, session 17). Inside a validation neither ever changes, so the first build of
    each is kept, per object, until the validation ends; the objects are held so that no new one can take a freed
    one's id. Both methods are GE's own (pinned version); tests/test_quality.py checks that the results equal those
    of GE's unpatched methods. Patches two GE classes: enter under `_VALIDATION_LOCK`, as `_validate` does.
    """
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    unpatched_configuration, unpatched_to_domain_obj = Expectation.configuration, ExpectationConfiguration.to_domain_obj
    configurations: dict[int, tuple[Any, Any]] = {}  # id(expectation) -> (expectation, its configuration)
    expectations: dict[int, tuple[Any, Any]] = {}  # id(configuration) -> (configuration, its expectation)

    def configuration(expectation):
        kept = configurations.get(id(expectation))
        if kept is None:
            kept = configurations[id(expectation)] = (expectation, unpatched_configuration.fget(expectation))
        return kept[1]

    def to_domain_obj(config):
        kept = expectations.get(id(config))
        if kept is None:
            kept = expectations[id(config)] = (config, unpatched_to_domain_obj(config))
        return kept[1]

    Expectation.configuration = property(configuration)
    ExpectationConfiguration.to_domain_obj = to_domain_obj
    try:
        yield
    finally:
        Expectation.configuration = unpatched_configuration
        ExpectationConfiguration.to_domain_obj = unpatched_to_domain_obj


@contextmanager
def _metric_ids_computed_once() -> Iterator[None]:
    """Within one validation, GE's id of a metric's arguments (`IDDict.to_id`) is computed once per distinct
    arguments instead of at every metric configuration GE builds.

    GE makes ~5,800 metric configurations for a county's 103 expectations, each hashing its domain and value
    arguments: a recursive conversion to JSON types (numpy type checks on every value), then an md5. There are ~30
    distinct arguments. An id is kept under the arguments' own JSON text (sort_keys, the C encoder), so only arguments
    of plain JSON types are kept; anything else (a numpy value, a frame), and one-key arguments (GE writes those as
    `key=str(value)`), go through GE's method as before. tests/test_quality.py checks the results equal GE's own.
    Patches a GE class: enter under `_VALIDATION_LOCK`, as `_validate` does.
    """
    import json

    from great_expectations.core.id_dict import IDDict

    ids: dict[str, Any] = {}
    unpatched = IDDict.to_id

    def to_id(arguments, id_keys=None, id_ignore_keys=None):
        if len(arguments) < 2:
            return unpatched(arguments, id_keys, id_ignore_keys)
        try:
            key = json.dumps([arguments, sorted(id_keys) if id_keys is not None else None,
                              sorted(id_ignore_keys) if id_ignore_keys is not None else None], sort_keys=True)
        except (TypeError, ValueError):  # not plain JSON: GE converts it
            return unpatched(arguments, id_keys, id_ignore_keys)
        if key not in ids:
            ids[key] = unpatched(arguments, id_keys, id_ignore_keys)
        return ids[key]

    IDDict.to_id = to_id
    try:
        yield
    finally:
        IDDict.to_id = unpatched


# The metric graphs GE planned in this process, by what was asked (see `_metric_graphs_planned_once`). Bounded by
# the distinct expectations of the suites (~110), however many counties and months a process validates.
_PLANNED_GRAPHS: dict[tuple, list] = {}
_PLANNED_GRAPHS_CAP = 10_000  # far above any configuration's count: a guard, not a tuning knob


@contextmanager
def _metric_graphs_planned_once() -> Iterator[None]:
    """GE's plan of an expectation's metrics (which metrics, on what, depending on which) is made once per process
    for each distinct request, instead of at every validation.

    Before computing anything GE plans each expectation's metrics into a graph: a third of the suites' time under
    the profiler, and the same graph every county and month; keeping it took a province county's suites from 0.67
    to 0.58 CPU-s (median of six interleaved rounds, bench/FINDINGS.md, session 23). The plan depends only on the
    metrics asked for (by id: metric name, column, arguments and the batch id, which is the same for every frame of
    the ephemeral context), the run-time settings and the engine's type, never on the data: the metric providers
    look only at those. So the first plan's edges are kept, under those keys, and a later
    request gets a new graph of the same edges. The metric configurations in them are the first plan's objects, with
    the defaults and dependencies that plan gave them; the computed values stay per validation (GE keeps them in
    the validation's own dict, by metric id). A request that is not plain JSON goes through GE's method as before.
    tests/test_quality.py checks the results equal those of GE's own planning. Patches a GE class: enter under
    `_VALIDATION_LOCK`, as `_validate` does.
    """
    import json

    from great_expectations.validator.metrics_calculator import MetricsCalculator
    from great_expectations.validator.validation_graph import ValidationGraph

    unpatched = MetricsCalculator.build_metric_dependency_graph

    def build_metric_dependency_graph(calculator, metric_configurations, runtime_configuration=None):
        engine = calculator._execution_engine
        try:
            key = (type(engine).__qualname__, tuple(metric.id for metric in metric_configurations),
                   json.dumps(runtime_configuration, sort_keys=True))
        except (TypeError, ValueError):  # not plain JSON: planned by GE as before
            return unpatched(calculator, metric_configurations, runtime_configuration)
        edges = _PLANNED_GRAPHS.get(key)
        if edges is None:
            graph = unpatched(calculator, metric_configurations, runtime_configuration)
            if len(_PLANNED_GRAPHS) < _PLANNED_GRAPHS_CAP:
                _PLANNED_GRAPHS[key] = list(graph.edges)
            return graph
        return ValidationGraph(execution_engine=engine, edges=list(edges))

    MetricsCalculator.build_metric_dependency_graph = build_metric_dependency_graph
    try:
        yield
    finally:
        MetricsCalculator.build_metric_dependency_graph = unpatched


# GE's result formats: BASIC gives what decides a check (rows, missing, offending, success); SUMMARY adds the rows
# that offend (their positions, for the examples a clerk reads) and counts of the offending values.
COUNTS_ONLY = {"result_format": "BASIC"}
WITH_EXAMPLES = {"result_format": "SUMMARY", "unexpected_index_column_names": [ROW], "partial_unexpected_count": 20}


def _validate(frame: pl.DataFrame, checks: dict[str, dict], suite_name: str) -> dict[str, Any]:
    """GE results of `checks` on `frame`, by check name; offending rows named by where a clerk finds them.

    Judged twice only where it matters: every check in `COUNTS_ONLY`, then the checks that found an offending row
    again in `WITH_EXAMPLES`, for the rows to name. Most checks of a month find none, and gathering the offending
    rows cost a clean province county's suites a sixth of their CPU (0.65 -> 0.55 CPU-s, bench/FINDINGS.md, session
    24); a check's success and counts are the same in both formats, so the results are those of judging everything
    `WITH_EXAMPLES` (tests/test_quality.py).
    """
    import great_expectations as gx

    batch_definition = _shared_batch_definition()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": _as_pandas(_judged(frame, checks))})

    def judged(names: list[str], result_format: dict) -> dict[str, Any]:
        # Expectations given to the constructor: the suite stays unsaved, bound to no store (nothing to persist).
        suite = gx.ExpectationSuite(name=suite_name, expectations=[_expectation(checks[name]) for name in names])
        with (_VALIDATION_LOCK, _configurations_built_once(), _metric_ids_computed_once(),  # GE classes patched
              _metric_graphs_planned_once()):
            return dict(zip(names, batch.validate(suite, result_format=result_format).results))

    results = judged(list(checks), COUNTS_ONLY)
    offending = [name for name, result in results.items() if (result.result or {}).get("unexpected_count")]
    if offending:
        results |= judged(offending, WITH_EXAMPLES)
    _name_examples(list(results.values()), frame)
    return results


def _name_examples(results: list, frame: pl.DataFrame) -> None:
    """Each offending row a result lists (by position, `ROW`) gets its `row_ref`: where a clerk finds it."""
    entries = [entry for result in results for entry in (result.result or {}).get("partial_unexpected_index_list")
               or [] if ROW in entry]
    if not entries:
        return
    positions = sorted({int(entry[ROW]) for entry in entries})
    refs = dict(zip(positions, frame[positions].select(_row_ref(frame)).to_series().to_list()))
    for entry in entries:
        entry["row_ref"] = refs[int(entry[ROW])]


# --- results as sentences --------------------------------------------------------------------------------------------

def _percent(share: float) -> str:
    """0.95 -> '95%', 0.995 -> '99.5%', 0.92 -> '92.0%' (observed shares keep one decimal)."""
    return f"{share:.1%}"


def _required(mostly: float) -> str:
    text = f"{mostly * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _number(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:,.0f}" if number == int(number) else f"{number:,.2f}"


def _examples(result: dict, column: str, with_value: bool) -> str:
    """Up to three offending rows as '低保.xlsx 工作表“Sheet1”第5行', the value added when it helps."""
    seen: list[str] = []
    for entry in result.get("partial_unexpected_index_list") or []:
        ref = str(entry.get("row_ref"))
        text = f"{ref}（{_number(entry.get(column))}）" if with_value else ref
        if text not in seen:
            seen.append(text)
        if len(seen) == EXAMPLES:
            break
    return "、".join(seen)


def _describe(spec: dict, result: dict, success: bool) -> tuple[str, str, str, int, int, str]:
    """(observed, threshold, sentence, rows evaluated, rows failing, examples) for one expectation's result."""
    kind, label, column = spec["expectation"], spec.get("label", spec["column"]), spec["column"]
    total = int(result.get("element_count") or 0)
    missing = int(result.get("missing_count") or 0)
    bad = int(result.get("unexpected_count") or 0)
    evaluated = total if kind == "expect_column_values_to_not_be_null" else total - missing
    examples = _examples(result, column, with_value=kind == "expect_column_values_to_be_between")
    where = f"，如 {examples}" if examples and not success else ""
    if evaluated == 0:
        return "无", "", f"{label}：本月没有可检查的行", 0, 0, ""
    if kind == "expect_column_values_to_be_between":
        low, high = spec.get("min_value"), spec.get("max_value")
        bounds = f"{_number(low) if low is not None else ''}–{_number(high) if high is not None else ''}"
        sentence = (f"{label}全部在 {bounds} 之间（{evaluated} 行）" if success
                    else f"{label}应在 {bounds} 之间，有 {bad} 行超出{where}")
        return f"{bad}/{evaluated} 行超出", bounds, sentence, evaluated, bad, examples
    if "mostly" in spec and spec["mostly"] < 1:
        observed, threshold = _percent((evaluated - bad) / evaluated), _required(spec["mostly"])
        verdict = "达到" if success else "低于"
        sentence = f"{label} {observed}，{verdict}要求的 {threshold}"
        if bad and not success:
            sentence += f"；{bad} 行不合格{where}"
        return observed, f">= {threshold}", sentence, evaluated, bad, examples
    threshold = "不重复" if kind == "expect_column_values_to_be_unique" else "0 行"
    sentence = f"{label}：无（已检查 {evaluated} 行）" if success else f"{label}：{bad} 行{where}"
    return f"{bad} 行", threshold, sentence, evaluated, bad, examples


def _failure_message(outcome: Any) -> str | None:
    """GE's message when an expectation could not run (e.g. a column missing), else None."""
    info = outcome.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for item in infos:
        if isinstance(item, dict) and item.get("raised_exception"):
            return str(item.get("exception_message") or "未知错误")
    return None


def _rows(month: str, suite: str, department: str, checks: dict[str, dict], outcomes: dict[str, Any]) -> list[dict]:
    """One result row per expectation of a suite."""
    rows = []
    for name, spec in checks.items():
        outcome = outcomes[name]
        failure = _failure_message(outcome)
        if failure:
            observed, threshold, sentence, evaluated, bad, examples = (
                "错误", "", f"{spec.get('label', name)}：检查无法运行（{failure}）", 0, 0, "")
            success = False
        else:
            success = bool(outcome.success)
            observed, threshold, sentence, evaluated, bad, examples = _describe(spec, outcome.result, success)
        rows.append({
            "month": month, "suite": suite, "department": department, "check_name": name,
            "expectation": spec["expectation"], "column": spec["column"], "success": success, "observed": observed,
            "threshold": threshold, "description_zh": sentence, "rows_evaluated": evaluated,
            "unexpected_count": bad, "examples": examples or None,
        })
    return rows


# --- public API --------------------------------------------------------------------------------------------------------

def run_list_suites(con: duckdb.DuckDBPyConnection, month: str) -> pl.DataFrame:
    """Every list suite (lists with at least one row read this month) and the roster suite, one row per expectation.

    Columns: month, suite (list_key or 'roster'), department, check_name, expectation, column, success, observed,
    threshold, description_zh, rows_evaluated, unexpected_count, examples.
    """
    rows: list[dict] = []
    frames = list_frames(con, month)
    for (list_key,), frame in frames.partition_by("list_key", as_dict=True, maintain_order=True).items():
        checks = list_suite(list_key)
        outcomes = _validate(frame, checks, list_key)
        rows += _rows(month, list_key, frame["department"][0], checks, outcomes)
    persons, households = roster_frames(con, month)
    if persons.height or households.height:
        checks = roster_suite()
        outcomes: dict[str, Any] = {}
        for frame_name, frame in (("persons", persons), ("households", households)):
            mine = {name: spec for name, spec in checks.items() if spec.get("frame", "persons") == frame_name}
            if mine:
                outcomes |= _validate(frame, mine, f"{ROSTER_SUITE}.{frame_name}")
        rows += _rows(month, ROSTER_SUITE, ROSTER_SUITE, checks, outcomes)
    return pl.DataFrame(rows, schema=RESULT_SCHEMA)


@contextmanager
def _atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Own transaction unless the caller already holds one (then the caller's commit decides).

    DuckDB has no "in transaction?" call, and a failed BEGIN would abort the caller's transaction; but in autocommit
    mode every statement gets a new transaction id, while inside a transaction the id stays the same.
    """
    first = con.execute("SELECT txid_current()").fetchone()[0]
    if con.execute("SELECT txid_current()").fetchone()[0] == first:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def write_results(con: duckdb.DuckDBPyConnection, month: str, results: pl.DataFrame) -> int:
    """Replace `month` in quality.results with `results` (other months are kept); the number of rows written."""
    others = results.filter(pl.col("month") != month).height
    if others:
        raise ValueError(f"write_results({month}): {others} result rows belong to another month")
    frame = results.rename({"column": "column_name"}).with_columns(checked_at=pl.lit(datetime.now()))
    with _atomic(con):
        con.execute(QUALITY_SQL.read_text(encoding="utf-8"))
        return replace_month(con, "quality.results", month, frame)


def suite_passed(results: pl.DataFrame, suite: str) -> bool:
    """True when every expectation of `suite` passed (a suite with no results has nothing against it)."""
    return bool(results.filter(pl.col("suite") == suite)["success"].all())


def suite_metadata(results: pl.DataFrame, suite: str) -> dict[str, Any]:
    """What a Dagster asset check shows for one suite: failed check names, every sentence, rows judged."""
    rows = results.filter(pl.col("suite") == suite)
    return {
        "failed_checks": ", ".join(rows.filter(~pl.col("success"))["check_name"].to_list()) or "无",
        "description_zh": "\n".join(("✓ " if ok else "✗ ") + text
                                     for ok, text in rows.select("success", "description_zh").iter_rows()),
        "rows_evaluated": int(rows["rows_evaluated"].max() or 0),
    }


# --- the offline report ----------------------------------------------------------------------------------------------

_STYLE = """
.fp-quality{font-family:"Microsoft YaHei","PingFang SC","Noto Sans CJK SC",sans-serif;font-size:14px;color:#222}
.fp-quality h2{font-size:18px;margin:8px 0}
.fp-quality details{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 8px}
.fp-quality summary{cursor:pointer;font-weight:bold}
.fp-quality table{border-collapse:collapse;width:100%;margin:6px 0}
.fp-quality th,.fp-quality td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
.fp-quality .ok{color:#1a7f37}.fp-quality .fail{color:#c62828}
.fp-quality .badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px;margin-right:6px}
.fp-quality .badge.ok{background:#1a7f37;color:#fff}.fp-quality .badge.fail{background:#c62828;color:#fff}
"""


def _suite_title(suite: str) -> str:
    """'民政局 · 新增农村低保人员名单' for a list key, '花名册' for the roster."""
    if suite == ROSTER_SUITE:
        return "花名册（户籍人口）"
    reg = registry()
    spec = reg.lists.get(suite)
    if spec is None:
        return suite
    department = reg.departments.get(spec.department)
    return f"{department.name if department else spec.department} · {spec.title}"


def render_quality_html(results: pl.DataFrame, month: str) -> str:
    """A self-contained HTML fragment (inline style, no scripts, no external links): failed suites open, first."""
    esc = html.escape
    suites = (results.group_by("suite", maintain_order=True).agg(passed=pl.col("success").all())
              .sort(["passed", "suite"]))
    failed = suites.filter(~pl.col("passed")).height
    parts = [f'<section class="fp-quality"><style>{_STYLE}</style>',
             f"<h2>{esc(month)} 数据质量检查</h2>",
             f"<p>共检查 {suites.height} 张名单（含花名册），<span class=\"{'fail' if failed else 'ok'}\">"
             f"{failed} 张未通过</span>。</p>"]
    for suite, passed in suites.iter_rows():
        rows = results.filter(pl.col("suite") == suite)
        badge = '<span class="badge ok">通过</span>' if passed else '<span class="badge fail">未通过</span>'
        parts.append(f"<details{'' if passed else ' open'}><summary>{badge}{esc(_suite_title(suite))}"
                     f" <small>({esc(suite)})</small></summary>")
        parts.append("<table><tr><th>结果</th><th>说明</th><th>实际</th><th>要求</th><th>检查行数</th></tr>")
        for row in rows.iter_rows(named=True):
            mark = '<span class="ok">✓</span>' if row["success"] else '<span class="fail">✗</span>'
            parts.append(f"<tr><td>{mark}</td><td>{esc(row['description_zh'] or '')}</td>"
                         f"<td>{esc(row['observed'] or '')}</td><td>{esc(row['threshold'] or '')}</td>"
                         f"<td>{row['rows_evaluated'] if row['rows_evaluated'] is not None else ''}</td></tr>")
        parts.append("</table></details>")
    parts.append("</section>")
    return "\n".join(parts)

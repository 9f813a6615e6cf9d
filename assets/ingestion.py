"""Ingestion assets: the drop zone, the roster, one asset per department list (generated from the registry),
and the month's warehouse load.

Lineage in the UI: drop_zone + roster (-> roster_places) -> civil_affairs__dibao, health__major_disease, ... -> warehouse_month.
"""

from datetime import datetime, timezone

import dagster as dg
import polars as pl

from assets.partitions import build_assets, month_of, partitioned_asset
from fangpin import ingest, reading
from fangpin.config import ListSpec, dashboard_settings, registry
from fangpin.warehouse import transaction
from pipelines.resources import FangpinData

RECONCILES = "reconciles"  # read = accepted + rejected
DELIVERED = "delivered"  # the department sent the list, and most of it was usable


def mostly_rejected_share() -> float:
    return float(dashboard_settings().get("checks", {}).get("mostly_rejected_share", 0.5))


def _count_by(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


@partitioned_asset(group_name="intake", kinds={"python"})
def drop_zone(context: dg.AssetExecutionContext, fangpin: FangpinData) -> reading.MonthScan:
    """Every file of `raw/<month>/`: hashed, read once, each sheet recognised as one department list (or not)."""
    scan = reading.scan_month(fangpin.root, month_of(context), registry())
    context.log.info(f"{len(scan.files)} 个文件，{sum(len(t) for t in scan.tables.values())} 张表，{len(scan.problems)} 个文件问题")
    context.add_output_metadata({
        "files": len(scan.files),
        "lists_recognised": len(scan.tables),
        "file_problems": len(scan.problems),
        "files_by_status": dg.MetadataValue.json(_count_by(f.status for f in scan.files)),
    })
    return scan


@partitioned_asset(group_name="intake", kinds={"python"})
def roster(context: dg.AssetExecutionContext, fangpin: FangpinData) -> ingest.RosterMonth:
    """The household roster (花名册) as of the month: persons, households with A33/A34/A37/A38, places."""
    month = month_of(context)
    month_roster = ingest.load_roster(fangpin.root, month, fangpin.roster_files(month))
    if month_roster.persons.is_empty():
        raise dg.Failure(description=no_roster_message(month, month_roster))
    whole = month_roster.rejected.filter(pl.col("row_number").is_null())  # files or sheets refused as a whole
    line = (f"花名册 {month_roster.rows_read} 行：{month_roster.persons.height} 人，{month_roster.households.height} 户，"
            f"拒收 {month_roster.rejected.height - whole.height} 行")
    if whole.height:  # half a county's roster missing must not read like one bad row
        context.log.warning(f"{line}；{whole.height} 个花名册文件或工作表无法处理：" + "；".join(whole["reason"].head(3)))
    else:
        context.log.info(line)
    context.add_output_metadata({
        "rows_read": month_roster.rows_read,
        "persons": month_roster.persons.height,
        "households": month_roster.households.height,
        "townships": month_roster.townships.height,
        "villages": month_roster.villages.height,
        "rejected_rows": month_roster.rejected.height - whole.height,
        "files_refused": whole.height,
    })
    fangpin.start_roster_write(month, month_roster)  # warehouse_month's transaction, begun beside department_lists
    return month_roster


@partitioned_asset(group_name="intake", kinds={"polars"})
def roster_places(roster: ingest.RosterMonth) -> pl.DataFrame:
    """Townships and villages of the roster with their division codes: all a department list needs to resolve
    places, so the list assets load this small table instead of unpickling the whole roster each."""
    return roster.places


def no_roster_message(month: str, month_roster: ingest.RosterMonth) -> str:
    """Why a month cannot go on: without the roster no one can be linked, and an empty warning queue would look like
    a quiet month instead of a missing roster."""
    problems = month_roster.rejected.sort("source_file", "row_number", nulls_last=False)["reason"].drop_nulls()
    refused = set(month_roster.rejected["source_file"].drop_nulls())  # their note repeats their problem
    notes = [f"{f.source_file}：{f.note}" for f in month_roster.files if f.note and f.source_file not in refused]
    reasons = "；".join(list(dict.fromkeys([*problems, *notes]))[:5]) or "文件夹为空或不存在"
    return (f"{month} 的花名册没有可用的人员（raw/{month}/roster/：{reasons}）。没有花名册就无法比对预警，本月运行停止；"
            f"请放入花名册后重新运行。 No usable roster for {month}: the month is not run.")


LISTS_STEP = "department_lists"


def _list_out(spec: ListSpec) -> dg.AssetOut:
    """One department list as an asset of its own, e.g. `civil_affairs__dibao`: key, group, lineage in the UI."""
    return dg.AssetOut(group_name=spec.department, kinds={"polars"}, tags={"fangpin/kind": spec.kind},
                       description=f"{registry().departments[spec.department].name}：{spec.title}（{spec.kind}）")


def _list_checks(spec: ListSpec) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(RECONCILES, asset=spec.asset_name, blocking=True,
                              description="rows read = rows accepted + rows rejected (nothing lost)"),
            dg.AssetCheckSpec(DELIVERED, asset=spec.asset_name,
                              description="the department sent this list and it was not mostly rejected")]


def build_list_assets(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Every department list of the registry, each its own asset with its own checks, computed in ONE step.

    Why one step: a county's list has a few hundred to a few thousand rows, and Dagster's overhead per step (events,
    input loading) cost more than the work itself, 22 times per county month (~8 s of a county run, ~13 s of a
    province's county run). Each list still materialises, checks and shows lineage on its own; a run may select
    some lists only (`can_subset`).
    """
    specs = list(registry().lists.values())

    @dg.multi_asset(
        name=LISTS_STEP,
        partitions_def=partitions,
        outs={spec.asset_name: _list_out(spec) for spec in specs},
        check_specs=[check for spec in specs for check in _list_checks(spec)],
        can_subset=True,
    )
    def department_lists(context: dg.AssetExecutionContext, drop_zone: reading.MonthScan,
                         roster_places: pl.DataFrame):
        selected = [spec for spec in specs if dg.AssetKey(spec.asset_name) in context.selected_asset_keys]
        results = ingest.ingest_lists(drop_zone, selected, roster_places, month_of(context))
        # One line for all lists: each log line is a write to the event log, and each list's own figures are in its
        # materialisation's metadata.
        context.log.info(lists_summary(results))
        for result in results:
            spec = result.spec
            yield dg.Output(result, output_name=spec.asset_name, metadata={
                "rows_read": result.rows_read, "rows_accepted": result.accepted.height,
                "rows_rejected": result.rejected.height, "file_problems": result.file_problems.height,
                "files": dg.MetadataValue.json(result.files),
                "received": bool(result.files),
            })
            yield dg.AssetCheckResult(
                asset_key=spec.asset_name, check_name=RECONCILES, passed=result.reconciles,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"read": result.rows_read, "accepted": result.accepted.height,
                          "rejected": result.rejected.height},
            )
            yield delivered_check(result, spec.asset_name)

    return department_lists


def lists_summary(results: list[ingest.ListResult]) -> str:
    """The step's one log line: how many lists came in and their rows read, accepted and rejected."""
    received = sum(1 for result in results if result.files)
    return (f"{len(results)} 个名单（收到 {received} 个）：读取 {sum(r.rows_read for r in results)} 行，"
            f"接收 {sum(r.accepted.height for r in results)}，拒收 {sum(r.rejected.height for r in results)}")


def delivered_check(result: ingest.ListResult, asset_name: str) -> dg.AssetCheckResult:
    """Warns when a department sent nothing, or when most of what it sent was rejected."""
    share = result.rejected.height / result.rows_read if result.rows_read else 0.0
    received = bool(result.files) or result.file_problems.height > 0
    problem = "未报送 not received" if not received else (
        f"拒收 {share:.0%} of rows rejected" if share > mostly_rejected_share() else "")
    return dg.AssetCheckResult(asset_key=asset_name, check_name=DELIVERED, passed=not problem,
                               severity=dg.AssetCheckSeverity.WARN,
                               metadata={"received": received, "rejected_share": round(share, 4), "problem": problem})


@partitioned_asset(
    group_name="warehouse",
    kinds={"duckdb"},
    ins={spec.asset_name: dg.AssetIn(spec.asset_name) for spec in registry().lists.values()},
    tags={"fangpin/writes": "warehouse"},
)
def warehouse_month(context: dg.AssetExecutionContext, fangpin: FangpinData, drop_zone: reading.MonthScan,
                    roster: ingest.RosterMonth, **lists: ingest.ListResult) -> dg.MaterializeResult:
    """One transaction that replaces the month in raw, staging, roster and quarantine; other months untouched."""
    month = month_of(context)
    results = [lists[spec.asset_name] for spec in registry().lists.values()]
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    with fangpin.writer() as con:
        roster_written = fangpin.roster_written(month)  # the transaction the roster step began, if it did
        with transaction(con, begun=roster_written is not None):
            written = ingest.write_month(con, month, drop_zone, roster, results, now, roster_written)
    fangpin.start_quality_suites(month)
    context.log.info("写入数据仓库：" + "，".join(f"{table} {rows}" for table, rows in written.items()))
    return dg.MaterializeResult(metadata={**{table: rows for table, rows in written.items()},
                                          "warehouse": str(fangpin.warehouse_path)})


def build_ingestion_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The intake assets of one deployment: a county (months) or a province (months x counties)."""
    return [*build_assets([drop_zone, roster, roster_places, warehouse_month], partitions),
            build_list_assets(partitions)]


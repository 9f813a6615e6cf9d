"""The provincial marts: built once every county's month has run (fangpin.province)."""

import warnings

import dagster as dg

from assets.partitions import MONTHLY, latest_county_run
from fangpin import province
from fangpin.warehouse import transaction
from pipelines.resources import FangpinData

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a Dagster beta class: every county partition of the month feeds the month
    ALL_COUNTIES_OF_THE_MONTH = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="month")


@dg.asset(partitions_def=MONTHLY, group_name="province", kinds={"duckdb"},
          deps=[dg.AssetDep("township_risk", partition_mapping=ALL_COUNTIES_OF_THE_MONTH)])
def province_risk(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """province.township_risk / village_risk / county_risk for the month, from every county's warehouse; a county
    whose month's latest partition run failed is left out (the instance is the record, whichever process ran it)."""
    month = context.partition_key
    failed = tuple(county for county in province.counties_found(fangpin.root)
                   if (run := latest_county_run(context.instance, month, county)) is not None
                   and run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED))
    return province_marts(context, fangpin, month, failed)


def province_marts(context, fangpin: FangpinData, month: str, failed: tuple[str, ...]) -> dg.MaterializeResult:
    """The provincial marts of `month` without the `failed` counties, logged and described (province_risk's body;
    the province's one run calls it with the counties its workers saw fail, which are no Dagster runs)."""
    with fangpin.writer() as con, transaction(con):
        counts = province.build_province_marts(con, month, fangpin.root, failed)
        missing = [row[0] for row in con.execute(
            "SELECT county FROM province.county_risk WHERE month = ? AND NOT ran AND left_out IS NULL "
            "ORDER BY county", [month]).fetchall()]
        left_out = con.execute("SELECT county, left_out FROM province.county_risk WHERE month = ? "
                               "AND left_out IS NOT NULL ORDER BY county", [month]).fetchall()
    if missing:
        context.log.warning(f"{len(missing)} 个县尚未运行 {month}：{'、'.join(missing)}")
    for county, why in left_out:  # a failed or unreadable county leaves the others' marts intact
        context.log.warning(f"县 {county} 未汇总：{why}")
    context.log.info("省级汇总：" + "，".join(f"{table} {rows}" for table, rows in counts.items()))
    return dg.MaterializeResult(metadata={**counts, "counties_not_run": dg.MetadataValue.json(missing),
                                          "counties_left_out": dg.MetadataValue.json([c for c, _ in left_out])})

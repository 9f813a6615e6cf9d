"""The provincial marts: built once every county's month has run (fangpin.province)."""

import warnings

import dagster as dg

from assets.partitions import MONTHLY
from fangpin import province
from fangpin.warehouse import transaction
from pipelines.resources import FangpinData

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a Dagster beta class: every county partition of the month feeds the month
    ALL_COUNTIES_OF_THE_MONTH = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="month")


@dg.asset(partitions_def=MONTHLY, group_name="province", kinds={"duckdb"},
          deps=[dg.AssetDep("township_risk", partition_mapping=ALL_COUNTIES_OF_THE_MONTH)])
def province_risk(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """province.township_risk / village_risk / county_risk for the month, from every county's warehouse."""
    month = context.partition_key
    with fangpin.writer() as con, transaction(con):
        counts = province.build_province_marts(con, month, fangpin.root)
        missing = [row[0] for row in con.execute(
            "SELECT county FROM province.county_risk WHERE month = ? AND NOT ran AND unreadable IS NULL "
            "ORDER BY county", [month]).fetchall()]
        unreadable = con.execute("SELECT county, unreadable FROM province.county_risk WHERE month = ? "
                                 "AND unreadable IS NOT NULL ORDER BY county", [month]).fetchall()
    if missing:
        context.log.warning(f"{len(missing)} 个县尚未运行 {month}：{'、'.join(missing)}")
    for county, why in unreadable:  # one damaged county file leaves the others' marts intact
        context.log.warning(f"县 {county} 的数据仓库无法读取，未汇总：{why}")
    context.log.info("省级汇总：" + "，".join(f"{table} {rows}" for table, rows in counts.items()))
    return dg.MaterializeResult(metadata={**counts, "counties_not_run": dg.MetadataValue.json(missing),
                                          "counties_unreadable": dg.MetadataValue.json([c for c, _ in unreadable])})

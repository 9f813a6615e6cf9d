"""County-level assets: data quality (great-expectations), department submissions, township risk, the dashboard.

Quality results land in `quality.results` and, per list, in an asset check shown on that list's asset in the UI.
"""

import warnings

import dagster as dg
import polars as pl

from assets.partitions import month_of, partitioned_asset
from fangpin import dashboard, quality, risk
from fangpin import submissions as submissions_module
from fangpin.config import registry
from fangpin.warehouse import transaction
from pipelines.resources import FangpinData

QUALITY = "quality"


# After the steps ready beside it (but before township_workbooks, -2): its suites were started by warehouse_month
# (FangpinData.start_quality_suites) and run while linkage, the queue and the marts do; this step collects them.
@partitioned_asset(group_name="county", kinds={"duckdb"}, deps=["warehouse_month"], op_tags={"dagster/priority": "-1"})
def data_quality(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """Expectation suites per department list and the roster, run on the month; results in quality.results."""
    month = month_of(context)
    with fangpin.writer() as con, transaction(con):
        results, seconds, in_background = fangpin.quality_results(con, month)
        quality.write_results(con, month, results)
    failed = results.filter(~pl.col("success")) if results.height else results
    where = "在后续步骤旁运行 beside the later steps" if in_background else "在本步骤中运行 in this step"
    context.log.info(f"质量检查 {results.height} 项，未通过 {failed.height} 项（{where}，{seconds:.1f} 秒）")
    return dg.MaterializeResult(metadata={"expectations": results.height, "failed": failed.height,
                                          "failed_suites": dg.MetadataValue.json(sorted(set(failed["suite"].to_list())) if failed.height else []),
                                          "suites_seconds": round(seconds, 2), "suites_in_background": in_background})


def _quality_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    targets = [spec.asset_name for spec in registry().lists.values()] + ["roster"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partitioned check specs are a Dagster preview feature
        return [dg.AssetCheckSpec(QUALITY, asset=target, additional_deps=["data_quality"], partitions_def=partitions,
                                  description="great-expectations suite of this list (schemas/expectations.yaml)")
                for target in targets]


def build_expectation_suites(partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    return dg.multi_asset_check(specs=_quality_specs(partitions), name="expectation_suites")(expectation_suites)


def expectation_suites(context: dg.AssetCheckExecutionContext, fangpin: FangpinData):
    """One check result per list (and the roster), read back from quality.results of the month."""
    month = month_of(context)
    with fangpin.writer() as con:
        results = con.sql("SELECT * FROM quality.results WHERE month = ?", params=[month]).pl()
    suite_of = {spec.asset_name: spec.key for spec in registry().lists.values()} | {"roster": "roster"}
    for asset_name, suite in suite_of.items():
        not_run = results.filter(pl.col("suite") == suite).is_empty()
        metadata = quality.suite_metadata(results, suite)
        yield dg.AssetCheckResult(
            asset_key=asset_name, check_name=QUALITY, passed=quality.suite_passed(results, suite),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**metadata, "not_run": not_run,
                      "description_zh": dg.MetadataValue.md(metadata["description_zh"] or "none")},
        )


@partitioned_asset(group_name="county", kinds={"duckdb"}, deps=["warehouse_month"],
          check_specs=[dg.AssetCheckSpec("every_list_received", asset="submissions",
                                         description="every department list of the registry arrived this month")])
def submissions(context: dg.AssetExecutionContext, fangpin: FangpinData):
    """marts.submissions: per department list, received, on time (by the 10th), rows, rejected rows, main reasons."""
    month = month_of(context)
    with fangpin.writer() as con, transaction(con):
        counts = submissions_module.build_submissions(con, month)
        table = submissions_module.submissions_markdown(con, month)
        missing = [row[0] for row in con.execute(
            "SELECT list FROM marts.submissions WHERE month = ? AND NOT received ORDER BY list", [month]).fetchall()]
    yield dg.MaterializeResult(metadata={**{k: v for k, v in counts.items() if isinstance(v, (int, float, str))},
                                         "preview": dg.MetadataValue.md(table)})
    yield dg.AssetCheckResult(check_name="every_list_received", passed=not missing, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"not_received": dg.MetadataValue.json(missing)})



@partitioned_asset(group_name="county", kinds={"duckdb"}, deps=["warning_queue", "submissions"])
def township_risk(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """marts.township_risk / village_risk: warned households, rising risk types, same-event clusters, level."""
    month = month_of(context)
    with fangpin.writer() as con, transaction(con):
        risk.build_township_risk(con, month)
        summary = risk.risk_summary(con, month)
    levels = {k: v for k, v in summary.items() if k.startswith("townships_")}
    context.log.info("乡镇风险等级：" + "，".join(f"{k} {v}" for k, v in levels.items()))
    return dg.MaterializeResult(metadata={**levels, "townships": summary.get("townships", 0),
                                          "top_townships": dg.MetadataValue.md(summary.get("top_townships_markdown", ""))})


@partitioned_asset(group_name="county", kinds={"html"}, deps=["township_risk", "data_quality"])
def county_dashboard(context: dg.AssetExecutionContext, fangpin: FangpinData) -> dg.MaterializeResult:
    """exports/<month>/dashboard.html: one self-contained page, opens from disk with no network, no IDs or names."""
    month = month_of(context)
    with fangpin.writer() as con:
        path = dashboard.write_dashboard(con, month, fangpin.exports_dir(month))
    context.log.info(f"看板 → {path}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size})


COUNTY_BODIES = [data_quality, submissions, township_risk, county_dashboard]

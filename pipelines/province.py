"""The provincial code location: the county assets partitioned by month x county, plus the provincial marts.

Same asset code as the county deployment (pipelines.definitions), instantiated for MONTH_BY_COUNTY; each county
partition reads and writes only `DIR/counties/<county>/` (its own warehouse file), so county runs may go in
parallel, on one machine or on Dagster's executors (README: "A province"). `county_month` runs one county's month;
`province_marts` builds the provincial tables once the counties have run.
"""
import dagster as dg

from assets.partitions import COUNTIES, MONTH_BY_COUNTY
from assets.province import province_risk
from fangpin import province
from fangpin.config import county
from pipelines.definitions import RUN_SETTINGS, county_assets
from pipelines.jobs import WRITER_TAG_KEY
from pipelines.resources import default_data_dir
from pipelines.schedules import previous_month

COUNTY_ASSETS, COUNTY_CHECKS = county_assets(MONTH_BY_COUNTY)

county_month = dg.define_asset_job(
    "county_month", selection=dg.AssetSelection.assets(*COUNTY_ASSETS),
    description="One county's month (one month x county partition): its own warehouse file.")
province_marts = dg.define_asset_job(
    "province_marts", selection=dg.AssetSelection.assets(province_risk),
    description="The provincial marts of a month, from every county's warehouse.")


@dg.sensor(job=county_month, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Registers each county folder found under counties/ as a county partition.")
def counties_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    found = province.counties_found(default_data_dir())
    known = set(context.instance.get_dynamic_partitions(COUNTIES.name))
    new = [c for c in found if c not in known]
    return dg.SensorResult(dynamic_partitions_requests=[COUNTIES.build_add_request(new)] if new else [])


@dg.schedule(job=county_month, cron_schedule=county()["schedule"]["cron"],
             execution_timezone=county()["schedule"]["timezone"], default_status=dg.DefaultScheduleStatus.RUNNING,
             description="The day after the departments' deadline: every county's previous month.")
def county_months_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    month = previous_month(context.scheduled_execution_time.date())
    return [dg.RunRequest(run_key=f"scheduled-{month}-{c}", partition_key=dg.MultiPartitionKey({"month": month, "county": c}),
                          tags={WRITER_TAG_KEY: c})  # one writer per county warehouse, counties in parallel
            for c in sorted(context.instance.get_dynamic_partitions(COUNTIES.name))]


defs = dg.Definitions(
    assets=[*COUNTY_ASSETS, province_risk],
    asset_checks=COUNTY_CHECKS,
    jobs=[county_month, province_marts],
    schedules=[county_months_schedule],
    sensors=[counties_sensor],
    **RUN_SETTINGS,
)

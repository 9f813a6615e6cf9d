"""The provincial code location: the county assets partitioned by month x county, plus the provincial marts.

Same asset code as the county deployment (pipelines.definitions), instantiated for MONTH_BY_COUNTY; each county
partition reads and writes only `DIR/counties/<county>/` (its own warehouse file), so county runs may go in
parallel, on one machine or on Dagster's executors (README: "A province"). `county_month` runs one county's month;
`province_marts` builds the provincial tables once the counties have run; `province_one_run` does a whole month of
the province as one run, without a run per county (pipelines.one_run).

Kept current without anyone watching (the daemon): `province_month_schedule` runs every county's previous month on
the 11th (one `province_month` run: `fangpin province` on this machine); `counties_sensor` registers new county
folders and re-runs a county's month when a file arrives late in its drop zone (that county only, re-reading the
late file only); `province_marts_sensor` rebuilds a month's provincial marts once none of its county runs is queued
or running.
"""
import json
import os
import signal
import subprocess
import sys
from contextlib import closing

import dagster as dg

from assets.partitions import COUNTIES, MONTH_BY_COUNTY, MONTH_TAG, MONTHLY, PARTITION_TAG, register_counties
from assets.province import province_risk
from fangpin import province
from fangpin.cli import county_month_succeeded
from fangpin.instance import side_by_side_runs
from pipelines import one_run
from pipelines.definitions import RUN_SETTINGS, county_assets
from pipelines.jobs import WRITER_TAG_KEY
from pipelines.resources import FangpinData, county_dir, default_data_dir
from pipelines.schedules import previous_month, schedule_times
from pipelines.sensors import LATE_FILES_TRIGGER, changed_months, month_fingerprints

COUNTY_ASSETS, COUNTY_CHECKS = county_assets(MONTH_BY_COUNTY)

county_month = dg.define_asset_job(
    "county_month", selection=dg.AssetSelection.assets(*COUNTY_ASSETS),
    description="One county's month (one month x county partition): its own warehouse file.")
province_marts = dg.define_asset_job(
    "province_marts", selection=dg.AssetSelection.assets(province_risk),
    description="The provincial marts of a month, from every county's warehouse.")


def county_run(month: str, county_code: str, run_key: str, trigger: str | None = None) -> dg.RunRequest:
    """A run of one county's month, tagged with its county: the run queue allows one writer per county file."""
    tags = {WRITER_TAG_KEY: county_code} | ({"fangpin/trigger": trigger} if trigger else {})
    return dg.RunRequest(partition_key=dg.MultiPartitionKey({"month": month, "county": county_code}),
                         run_key=run_key, tags=tags)


@dg.sensor(job=county_month, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Registers each county folder found under counties/ as a county partition, and re-runs a "
                       "county's month when files arrive late in its drop zone (that county only).")
def counties_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """The cursor keeps each county's month fingerprints (pipelines.sensors): a month seen for the first time is
    left to the schedule, a month whose files changed since is run again, once per change (the run key)."""
    root = default_data_dir()
    found = province.counties_found(root)
    known = set(context.instance.get_dynamic_partitions(COUNTIES.name))
    new = [c for c in found if c not in known]
    previous = json.loads(context.cursor) if context.cursor else {}
    current = {c: month_fingerprints(county_dir(root, c) / "raw") for c in found}
    months = set(MONTHLY.get_partition_keys())
    late = [county_run(month, c, f"late-{c}-{month}-{current[c][month]}", LATE_FILES_TRIGGER)
            for c in found if c in known for month in changed_months(previous.get(c, {}), current[c], months)]
    return dg.SensorResult(run_requests=late, cursor=json.dumps(current, sort_keys=True),
                           dynamic_partitions_requests=[COUNTIES.build_add_request(new)] if new else [])


@dg.op(description="Every county's month in worker processes on this machine (`fangpin province`): each county "
                     "still its own run of its partition, then the provincial marts.")
def run_counties_of_the_month(context: dg.OpExecutionContext) -> None:
    """Why a run that starts runs: the daemon launches each run in a new process, which pays Python's, Dagster's
    and great-expectations' imports again (~9 CPU-s a county, as much as a small county's own work; bench/FINDINGS.md
    session 10), while `fangpin province` keeps one process per worker for all its counties."""
    month, root = context.partition_key, default_data_dir()
    counties = _counties_to_run(root, month)
    command = [sys.executable, "-m", "fangpin.cli", "province", "--month", month, "--data-dir", root]
    context.log.info(" ".join(command))
    code = run_in_own_process_group(command)
    if code != 0:
        failed = [c for c in counties if not county_month_succeeded(context.instance, month, c)]
        what = _not_done(failed) if failed else "省级汇总失败"
        raise dg.Failure(description=f"fangpin province {month}：{what}（退出码 {code}，详见本次运行的日志）。"
                                     f" Failed: {', '.join(failed) or 'the provincial marts'}.")


def _counties_to_run(root, month: str) -> list[str]:
    """The province's counties; a run of the whole province without any fails saying where they belong."""
    counties = province.counties_found(root)
    if not counties:
        raise dg.Failure(description=province.no_counties_message(root, month))
    return counties


def _not_done(failed: list[str]) -> str:
    return f"{len(failed)} 个县未完成：{'、'.join(failed)}"


@dg.job(partitions_def=MONTHLY, tags={WRITER_TAG_KEY: "province"},
        description="One month of the whole province on this machine: every county, then the provincial marts.")
def province_month():
    run_counties_of_the_month()


class OneRunConfig(dg.Config):
    workers: int = 0  # counties side by side; 0: one per core as far as memory holds (fangpin.instance)


@dg.op(description="Every county's month computed in this one run (the county assets invoked directly, no run per "
                   "county), then the provincial marts.")
def run_province_in_one_run(context: dg.OpExecutionContext, config: OneRunConfig, fangpin: FangpinData) -> None:
    """pipelines.one_run says why, and what the UI shows instead of county runs: each county's outcome as a line of
    this run's log, its assets' materialisations in its partition, then the marts'. A county that fails does not
    stop the others; the run fails at the end, naming it."""
    month, root = context.partition_key, fangpin.root
    counties = _counties_to_run(root, month)
    register_counties(context.instance, counties)  # each county's materialisations name its partition
    failed = []
    workers = config.workers or side_by_side_runs()
    # Each county as soon as it is done; closed on any error here, so the workers' queue is cancelled at once.
    with closing(one_run.run_counties(root, month, province.month_bytes(root, month, counties), workers)) as outcomes:
        for outcome in outcomes:
            (context.log.info if outcome.ok else context.log.error)(outcome.line())
            for materialization in one_run.materializations(outcome, month):
                context.log_event(materialization)
            if not outcome.ok:
                failed.append(outcome.county)
    marts = one_run.build_province_marts(root, month, tuple(sorted(failed)))
    context.log_event(dg.AssetMaterialization(asset_key=province_risk.key, partition=month, metadata=marts.metadata))
    if failed:
        failed.sort()
        raise dg.Failure(description=f"{_not_done(failed)}（原因见本次运行的日志）。"
                                     f" Failed: {', '.join(failed)}.")


@dg.job(partitions_def=MONTHLY, tags={WRITER_TAG_KEY: "province"},
        description="One month of the whole province as one run: every county computed without a run of its own, "
                    "then the provincial marts.")
def province_one_run():
    run_province_in_one_run()


INTERRUPT_GRACE_SECONDS = 60  # for the county runs in progress to record their end


def run_in_own_process_group(command: list[str]) -> int:
    """Run `command` and wait for it; when this process is interrupted (the run terminated from the UI, Ctrl-C),
    the command and every worker it started are interrupted too, so their county runs end as Dagster records them."""
    child = subprocess.Popen(command, start_new_session=True)
    try:
        return child.wait()
    except BaseException:
        os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=INTERRUPT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:  # a worker that does not stop on an interrupt is killed
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        raise


RECENT_COUNTY_RUNS = 1000  # how far back the marts sensor looks: ten months of a 100-county province
RECENT_PROVINCE_RUNS = 12  # whole-province runs go one at a time (their writer tag): the latest few are enough


def months_awaiting_marts(instance: dg.DagsterInstance) -> dict[str, str]:
    """month -> id of its county run that finished last, for each month whose county runs are all over (none queued
    or running, no province_month or province_one_run run going) and whose provincial marts were not built after
    the last of them.

    Why wait for all: with `county_months_schedule` every county of the month starts at once, and marts built after
    each would be a hundred rebuilds; a county that failed is no reason to wait (the marts list it as not run).
    `fangpin province` (and so `province_month`) and `province_one_run` build the marts themselves, after their
    counties: nothing is left here."""
    latest, busy = _county_runs_by_month(instance)
    for whole_province in (province_month, province_one_run):
        for record in instance.get_run_records(dg.RunsFilter(job_name=whole_province.name),
                                               limit=RECENT_PROVINCE_RUNS):
            if not record.dagster_run.is_finished:  # its workers start the next county any moment
                busy.add(record.dagster_run.tags.get(PARTITION_TAG))
    waiting = {}
    for month, (ended, run_id) in sorted(latest.items()):
        built = instance.get_run_records(dg.RunsFilter(job_name=province_marts.name,
                                                       tags={PARTITION_TAG: month}), limit=1)
        if month not in busy and (not built or built[0].create_timestamp.timestamp() < ended):
            waiting[month] = run_id
    return waiting


def _county_runs_by_month(instance: dg.DagsterInstance) -> tuple[dict[str, tuple[float, str]], set[str]]:
    """Of the recent county runs: per month, when the last finished one ended and its id; and the months with a
    county run queued or going."""
    latest: dict[str, tuple[float, str]] = {}
    busy = set()
    for record in instance.get_run_records(dg.RunsFilter(job_name=county_month.name), limit=RECENT_COUNTY_RUNS):
        run, month = record.dagster_run, record.dagster_run.tags.get(MONTH_TAG)
        if month is None:
            continue
        if not run.is_finished:
            busy.add(month)
            continue
        ended = record.end_time or record.update_timestamp.timestamp()
        if month not in latest or ended > latest[month][0]:
            latest[month] = (ended, run.run_id)
    return latest, busy


@dg.sensor(job=province_marts, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Rebuilds a month's provincial marts once none of its county runs is queued or running.")
def province_marts_sensor(context: dg.SensorEvaluationContext) -> list[dg.RunRequest]:
    return [dg.RunRequest(partition_key=month, run_key=f"province-marts-{month}-{run_id}")
            for month, run_id in months_awaiting_marts(context.instance).items()]


@dg.schedule(job=province_month, default_status=dg.DefaultScheduleStatus.RUNNING, **schedule_times(),
             description="The day after the departments' deadline: the previous month of every county, on this "
                         "machine (one run of province_month; each county still gets its own run).")
def province_month_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = previous_month(context.scheduled_execution_time.date())
    return dg.RunRequest(run_key=f"scheduled-{month}", partition_key=month)


@dg.schedule(job=county_month, default_status=dg.DefaultScheduleStatus.STOPPED, **schedule_times(),
             description="Instead of province_month_schedule when a run launcher spreads runs over machines "
                         "(dagster-k8s): one run per county of the previous month.")
def county_months_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    month = previous_month(context.scheduled_execution_time.date())
    return [county_run(month, c, f"scheduled-{month}-{c}")  # counties in parallel, one writer per file
            for c in sorted(context.instance.get_dynamic_partitions(COUNTIES.name))]


defs = dg.Definitions(
    assets=[*COUNTY_ASSETS, province_risk],
    asset_checks=COUNTY_CHECKS,
    jobs=[county_month, province_marts, province_month, province_one_run],
    schedules=[province_month_schedule, county_months_schedule],
    sensors=[counties_sensor, province_marts_sensor],
    **RUN_SETTINGS,
)

"""The monthly schedule: on the 11th at 06:00 Asia/Shanghai, run the month the departments just reported on."""

from datetime import date

import dagster as dg

from fangpin.config import county
from pipelines.jobs import monthly_run


def previous_month(day: date) -> str:
    """The partition key of the month before `day` (lists about October arrive by 10 November)."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def schedule_times() -> dict[str, str]:
    """When a month runs (config/county.yaml `schedule`), as `dg.schedule` takes it: county and province alike."""
    return {"cron_schedule": county()["schedule"]["cron"], "execution_timezone": county()["schedule"]["timezone"]}


@dg.schedule(
    job=monthly_run,
    **schedule_times(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The day after the departments' deadline (seed 003: lists due by the 10th).",
)
def monthly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    month = previous_month(context.scheduled_execution_time.date())
    return dg.RunRequest(run_key=f"scheduled-{month}", partition_key=month)

"""Late files: when a month's drop zone changes after it was seen, run that month again.

The cursor keeps, per month folder, a fingerprint of (path, size, mtime) of every file under it. The first time a
month is seen nothing is requested (the schedule runs it); any later change (a late department file, a township's
returned workbook) requests a run of that month with a run key naming the fingerprint, so it runs once per change.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from assets.partitions import MONTHLY
from fangpin.config import MONTH_PATTERN
from pipelines.jobs import monthly_run
from pipelines.resources import default_data_dir

LATE_FILES_TRIGGER = "late-files"  # the `fangpin/trigger` tag of a run a late file asked for


def month_fingerprints(raw_dir: Path) -> dict[str, str]:
    """month -> hash of the listing of every file under raw/<month>/ (cheap: no file contents read)."""
    fingerprints = {}
    if not raw_dir.is_dir():
        return fingerprints
    for month_dir in sorted(p for p in raw_dir.iterdir() if p.is_dir() and MONTH_PATTERN.match(p.name)):
        listing = sorted(
            f"{f.relative_to(month_dir).as_posix()}|{f.stat().st_size}|{f.stat().st_mtime_ns}"
            for f in month_dir.rglob("*") if f.is_file()
        )
        fingerprints[month_dir.name] = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    return fingerprints


def changed_months(previous: dict[str, str], current: dict[str, str], valid_months: set[str]) -> list[str]:
    return sorted(m for m, fp in current.items() if m in previous and previous[m] != fp and m in valid_months)


@dg.sensor(job=monthly_run, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Re-runs a month when files arrive late in data/raw/<month>/.")
def late_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    raw_dir = Path(default_data_dir()) / "raw"
    previous = json.loads(context.cursor) if context.cursor else {}
    current = month_fingerprints(raw_dir)
    valid = set(MONTHLY.get_partition_keys())
    requests = [dg.RunRequest(run_key=f"late-{m}-{current[m]}", partition_key=m,
                              tags={"fangpin/trigger": LATE_FILES_TRIGGER})
                for m in changed_months(previous, current, valid)]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

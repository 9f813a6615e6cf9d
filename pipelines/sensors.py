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
from fangpin.reading import walk_folder
from pipelines.jobs import monthly_run
from pipelines.resources import default_data_dir

LATE_FILES_TRIGGER = "late-files"  # the `fangpin/trigger` tag of a run a late file asked for


def month_fingerprints(raw_dir: Path) -> dict[str, str]:
    """month -> hash of the listing of every file under raw/<month>/ (cheap: no file contents read)."""
    fingerprints = {}
    if not raw_dir.is_dir():
        return fingerprints
    for month_dir in sorted(p for p in raw_dir.iterdir() if p.is_dir() and MONTH_PATTERN.match(p.name)):
        files, unreachable = walk_folder(month_dir)  # the run's own walk: linked folders in, unreadable ones named
        listing = sorted([*(_entry(month_dir, f) for f in files),
                          *(f"{u.relative_to(month_dir).as_posix()}|unreachable" for u in unreachable)])
        fingerprints[month_dir.name] = hashlib.sha256("\n".join(listing).encode("utf-8", "surrogateescape"))\
            .hexdigest()[:16]
    return fingerprints


def _entry(month_dir: Path, path: Path) -> str:
    """A file as the fingerprint lists it: path, size, modification time (a file gone meanwhile: its path only)."""
    try:
        stat = path.stat()
    except OSError:
        return f"{path.relative_to(month_dir).as_posix()}|gone"
    return f"{path.relative_to(month_dir).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}"


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

"""The persistent Dagster instance (DAGSTER_HOME) shared by the CLI, the schedule, the sensor and the UI.

Without one, runs started from the CLI would vanish from the UI's run history; this makes a project-local one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from fangpin.config import PROJECT_ROOT

WRITTEN_BY_FANGPIN = "# Written by fangpin (fangpin/instance.py)."
RUN_PEAK_BYTES = 3 * 10**9  # one county run's peak memory, with room (2.6 GB measured for 1,000,000 persons)
DAGSTER_YAML = """\
{written_by} Runs from the CLI, the schedule, the sensor and the UI share this instance.
# fangpin rewrites this file when it changes while the first line is here; delete that line to keep your own edits.
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: {side_by_side}  # runs at once on this machine (fangpin.instance.side_by_side_runs)
  tag_concurrency_limits:
    - key: "fangpin/warehouse"
      value:
        applyLimitPerUniqueValue: true
      limit: 1          # one writer per warehouse file (tag value: "writer", or the county): queued runs wait their turn
event_log_storage:      # Dagster's SQLite event log, its connections kept open: ~4 ms less per event (~430 a run)
  module: pipelines.event_log
  class: PooledSqliteEventLogStorage
  config:
    base_dir: {event_log_dir}  # where Dagster's stock instance keeps it
"""


def dagster_home() -> Path:
    """`DAGSTER_HOME` if set, else `<project>/.dagster_home`, created with its dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)  # step outputs under storage/ hold list rows with names and IDs: owner only
    config, text = home / "dagster.yaml", dagster_yaml(home)
    if not config.exists() or _outdated(config.read_text(encoding="utf-8"), text):
        config.write_text(text, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return home


def dagster_yaml(home: Path) -> str:
    """The instance's settings; the event log's folder is named in full, as the stock instance would find it."""
    return DAGSTER_YAML.format(written_by=WRITTEN_BY_FANGPIN, side_by_side=side_by_side_runs(),
                               event_log_dir=json.dumps(str(home / "history" / "runs")))


def side_by_side_runs() -> int:
    """How many county runs go at once on this machine: one per core, as many as its memory holds.

    Both the run queue (a province's scheduled county runs, through the daemon) and `fangpin province --workers`
    take this. More runs than cores would not go faster (each run keeps a core busy), only hold more memory: on the
    2-core, 24 GB machine of the benchmark that is 2 runs (5.1 GB measured), where a fixed 4 would hold about twice
    that."""
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): cores alone
        memory = cores * RUN_PEAK_BYTES
    return max(1, min(cores, memory // RUN_PEAK_BYTES))


def _outdated(text: str, current: str) -> bool:
    """A dagster.yaml fangpin wrote, from an earlier version (a setting added since) or for a home since moved."""
    return text.startswith(WRITTEN_BY_FANGPIN) and text != current

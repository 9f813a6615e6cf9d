"""The persistent Dagster instance (DAGSTER_HOME) shared by the CLI, the schedule, the sensor and the UI.

Without one, runs started from the CLI would vanish from the UI's run history; this makes a project-local one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from fangpin.config import PROJECT_ROOT

WRITTEN_BY_FANGPIN = "# Written by fangpin (fangpin/instance.py)."
DAGSTER_YAML = """\
{written_by} Runs from the CLI, the schedule, the sensor and the UI share this instance.
# fangpin rewrites this file when it changes while the first line is here; delete that line to keep your own edits.
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 4
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
    return DAGSTER_YAML.format(written_by=WRITTEN_BY_FANGPIN, event_log_dir=json.dumps(str(home / "history" / "runs")))


def _outdated(text: str, current: str) -> bool:
    """A dagster.yaml fangpin wrote, from an earlier version (a setting added since) or for a home since moved."""
    return text.startswith(WRITTEN_BY_FANGPIN) and text != current

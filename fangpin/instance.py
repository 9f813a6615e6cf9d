"""The persistent Dagster instance (DAGSTER_HOME) shared by the CLI, the schedule, the sensor and the UI.

Without one, runs started from the CLI would vanish from the UI's run history; this makes a project-local one.
"""
from __future__ import annotations

import os
from pathlib import Path

from fangpin.config import PROJECT_ROOT

DAGSTER_YAML = """\
# Written by fangpin (fangpin/instance.py). Runs from the CLI, the schedule, the sensor and the UI share this instance.
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 4
  tag_concurrency_limits:
    - key: "fangpin/warehouse"
      value:
        applyLimitPerUniqueValue: true
      limit: 1          # one writer per warehouse file (tag value: "writer", or the county): queued runs wait their turn
"""


def dagster_home() -> Path:
    """`DAGSTER_HOME` if set, else `<project>/.dagster_home`, created with its dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)  # step outputs under storage/ hold list rows with names and IDs: owner only
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    return home

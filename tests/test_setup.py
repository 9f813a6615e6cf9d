"""`make`'s set-up: which interpreter the virtual environment is made with (the Makefile's VENV_PYTHON)."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION_PYTHON = Path("/usr/bin/python3.11")


def planned_sync(*overrides: str) -> str:
    """The commands `make` would run to (re)make .venv, without running them (`make -n`, pyproject.toml taken as
    changed so that the sync is due), with neither interpreter variable set in the environment."""
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHON", "VENV_PYTHON")}
    return subprocess.run(["make", "--no-print-directory", "-n", "-W", "pyproject.toml", ".venv/.synced", *overrides],
                          cwd=ROOT, env=environment, capture_output=True, text=True, check=True).stdout


def test_the_virtual_environment_is_made_with_the_distribution_s_python_where_there_is_one():
    expected = str(DISTRIBUTION_PYTHON) if DISTRIBUTION_PYTHON.exists() else "python3.11"
    assert f"sync --frozen --python {expected}\n" in planned_sync()


def test_venv_python_chooses_another_interpreter():
    assert "sync --frozen --python /opt/python/bin/python3.11\n" in planned_sync(
        "VENV_PYTHON=/opt/python/bin/python3.11")

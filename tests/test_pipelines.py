"""The Dagster code location: it loads, assets come from the registry, the schedule and the sensor pick the right month."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import yaml

from fangpin.config import PROJECT_ROOT, registry
from pipelines.definitions import defs
from pipelines.schedules import monthly_schedule, previous_month
from pipelines.sensors import late_files_sensor


def test_every_registry_list_is_an_asset_with_a_reconciliation_check():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    for spec in registry().lists.values():
        assert spec.asset_name in keys
        assert (spec.asset_name, "reconciles") in checks and (spec.asset_name, "delivered") in checks
    assert {"drop_zone", "roster", "warehouse_month", "warning_queue", "township_workbooks"} <= keys


def test_lineage_runs_from_each_list_into_the_warehouse():
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("warehouse_month")).parent_keys}
    assert {spec.asset_name for spec in registry().lists.values()} <= parents


def test_adding_a_list_is_a_configuration_edit(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    body = yaml.safe_load((config / "registry.yaml").read_text(encoding="utf-8"))
    body["lists"]["civil_affairs.low_income_edge"] = {"keywords": ["低保边缘"], "kind": "risk", "risk_type": "其他"}
    (config / "registry.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    code = ("from pipelines.definitions import defs; "
            "print(sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()))")
    env = {**os.environ, "FANGPIN_CONFIG_DIR": str(config)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert "civil_affairs__low_income_edge" in out.stdout


def test_job_is_partitioned_by_month_keys():
    job = defs.resolve_job_def("monthly_run")
    keys = job.partitions_def.get_partition_keys(current_time=datetime(2026, 11, 23))
    assert keys[-1] == "2026-10"
    assert "2026-09" in keys


def test_schedule_runs_the_previous_month_on_the_11th():
    shanghai = ZoneInfo("Asia/Shanghai")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 11, 6, 0, tzinfo=shanghai))
    request = monthly_schedule(context)
    assert request.partition_key == "2026-10"
    assert monthly_schedule.cron_schedule == "0 6 11 * *"
    assert monthly_schedule.execution_timezone == "Asia/Shanghai"
    assert previous_month(datetime(2027, 1, 11).date()) == "2026-12"


def test_sensor_requests_a_rerun_only_when_a_month_changes(tmp_path, monkeypatch):
    raw = tmp_path / "raw" / "2026-09" / "civil_affairs"
    raw.mkdir(parents=True)
    (raw / "低保.csv").write_text("身份证号码\n", encoding="utf-8")
    monkeypatch.setenv("FANGPIN_DATA_DIR", str(tmp_path))

    first = late_files_sensor(dg.build_sensor_context(cursor=None))
    assert first.run_requests == []  # first sight: the schedule runs it

    unchanged = late_files_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert unchanged.run_requests == []

    late = tmp_path / "raw" / "2026-09" / "health"
    late.mkdir()
    (late / "大病.csv").write_text("身份证号码\n", encoding="utf-8")
    after = late_files_sensor(dg.build_sensor_context(cursor=unchanged.cursor))
    assert [r.partition_key for r in after.run_requests] == ["2026-09"]
    assert json.loads(after.cursor)["2026-09"] != json.loads(first.cursor)["2026-09"]


def test_a_month_without_a_usable_roster_fails_instead_of_warning_nobody(tmp_path):
    """An empty (or refused) roster must stop the month: an empty warning queue would look like a quiet month."""
    from pipelines.resources import FangpinData

    roster = defs.get_assets_def("roster")
    (tmp_path / "raw" / "2026-10" / "roster").mkdir(parents=True)
    (tmp_path / "raw" / "2026-10" / "roster" / "花名册.xlsx").write_bytes(b"not a workbook")
    result = dg.materialize([roster], partition_key="2026-10", raise_on_error=False,
                            resources={"fangpin": FangpinData(data_dir=str(tmp_path))},
                            instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "花名册没有可用的人员" in failure.description and "花名册.xlsx" in failure.description

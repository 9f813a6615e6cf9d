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
import pytest
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

    share = tmp_path / "share"  # a department's files linked in from a shared drive: their arrival counts too
    share.mkdir()
    (tmp_path / "raw" / "2026-09" / "water").symlink_to(share)
    (share / "饮水.csv").write_text("身份证号码\n", encoding="utf-8")
    linked = late_files_sensor(dg.build_sensor_context(cursor=after.cursor))
    assert [r.partition_key for r in linked.run_requests] == ["2026-09"]


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


def _recording_roster_reads(monkeypatch, fail: Exception | None = None) -> list[str]:
    """Patch `reading.read_roster` to note the thread each call runs in (and optionally fail)."""
    import threading

    from fangpin import reading

    threads: list[str] = []
    real = reading.read_roster

    def read_roster(*args, **kwargs):
        threads.append(threading.current_thread().name)
        if fail is not None:
            raise fail
        return real(*args, **kwargs)

    monkeypatch.setattr(reading, "read_roster", read_roster)
    return threads


def _materialize(names: list[str], data_dir: Path) -> dg.ExecuteInProcessResult:
    from pipelines.resources import FangpinData

    return dg.materialize([defs.get_assets_def(name) for name in names], partition_key="2026-10",
                          raise_on_error=False, resources={"fangpin": FangpinData(data_dir=str(data_dir))},
                          instance=dg.DagsterInstance.ephemeral())


def test_a_run_reads_its_roster_from_its_setup_on_and_the_roster_step_uses_that_read(tmp_path, monkeypatch):
    """calamine's parse of the roster overlaps the first steps: it starts in a background thread when the run's
    resource is set up, once, and the roster step judges what it read (here: a file that is not a workbook)."""
    threads = _recording_roster_reads(monkeypatch)
    (tmp_path / "raw" / "2026-10" / "roster").mkdir(parents=True)
    (tmp_path / "raw" / "2026-10" / "roster" / "花名册.xlsx").write_bytes(b"not a workbook")

    result = _materialize(["drop_zone", "roster"], tmp_path)

    assert threads == ["fangpin-roster-read"]
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "roster" and "花名册.xlsx" in failure.step_failure_data.user_failure_data.description


def test_a_roster_read_started_before_the_run_is_the_one_the_run_uses(tmp_path, monkeypatch):
    """The CLI starts the roster's read before Dagster loads (fangpin.background.read_roster_ahead): the run's
    resource takes it over instead of reading again, and the roster step judges what it read."""
    from fangpin import background

    threads = _recording_roster_reads(monkeypatch)
    (tmp_path / "raw" / "2026-10" / "roster").mkdir(parents=True)
    (tmp_path / "raw" / "2026-10" / "roster" / "花名册.xlsx").write_bytes(b"not a workbook")

    background.read_roster_ahead(tmp_path, "2026-10")
    result = _materialize(["drop_zone", "roster"], tmp_path)

    assert threads == ["fangpin-roster-read"]  # one read: the one started ahead
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "roster" and "花名册.xlsx" in failure.step_failure_data.user_failure_data.description
    background.roster_read(tmp_path, "2026-10").result(30)  # taken: the next read is a new one
    assert threads == ["fangpin-roster-read"] * 2


def test_the_cli_reads_the_roster_ahead_only_for_runs_that_have_the_roster_step(tmp_path, monkeypatch):
    from fangpin import background, cli

    def no_run(*args, **kwargs):
        raise RuntimeError("no run in this test")

    ahead: list[tuple] = []
    monkeypatch.setattr(background, "read_roster_ahead", lambda data_dir, month: ahead.append((data_dir, month)))
    monkeypatch.setattr(cli, "_execute", no_run)
    for assets in (None, ["drop_zone", "roster"], ["warning_queue"]):
        with pytest.raises(RuntimeError):
            cli.run_month("2026-10", tmp_path, assets)
    assert ahead == [(tmp_path, "2026-10")] * 2


@pytest.mark.parametrize("command", ["run", "province", "province --one-run"])
def test_a_month_that_cannot_run_is_refused_with_a_message_naming_the_months_that_can(tmp_path, monkeypatch, capsys,
                                                                                        command):
    """Before 2024-01, or not yet over (its lists arrive the month after): the CLI says which months can run, in
    Chinese and English, instead of Dagster's traceback about an unknown partition."""
    from assets.partitions import MONTHLY
    from fangpin import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    last = MONTHLY.get_last_partition_key()
    not_over = f"{int(last[:4]) + (last[5:] == '12')}-{int(last[5:]) % 12 + 1:02d}"
    for month in ("2023-12", not_over):
        assert cli.main([*command.split(), "--month", month, "--data-dir", str(tmp_path)]) == 2
        message = capsys.readouterr().err
        assert f"不能运行 {month}" in message and f"2024-01 至 {last}" in message and "cannot be run" in message
        assert "Traceback" not in message
    assert not (tmp_path / "warehouse").exists()


def test_a_month_written_another_way_is_refused_in_chinese_and_english(tmp_path, capsys):
    from fangpin import cli

    assert cli.main(["run", "--month", "2026-1", "--data-dir", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert "月份应写成 2026-10" in message and "'2026-1'" in message and "must look like 2026-10" in message


def test_a_data_directory_that_does_not_exist_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    """A mistyped --data-dir: exit 2 with the folder named, for each command that reads one, not a run of every step
    ending in 'no roster'."""
    from fangpin import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    missing = tmp_path / "no-such-county"
    for command in ("run", "province", "province --one-run", "snapshot"):
        month = [] if command == "snapshot" else ["--month", "2026-10"]
        assert cli.main([*command.split(), *month, "--data-dir", str(missing)]) == 2, command
        message = capsys.readouterr().err
        assert f"数据目录 {missing} 不存在" in message and "does not exist" in message, command
    assert not missing.exists() and not (tmp_path / "home").exists()


def test_counties_asked_for_without_a_folder_are_named(tmp_path, monkeypatch, capsys):
    from fangpin import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "counties" / "360101" / "raw" / "2026-10").mkdir(parents=True)
    assert cli.main(["province", "--month", "2026-10", "--data-dir", str(tmp_path), "--counties", "360101,999999"]) == 2
    message = capsys.readouterr().err
    assert "没有这些县的文件夹：999999" in message and "360101" not in message.split("：", 1)[1]


def test_an_error_reading_the_roster_early_fails_the_roster_step_not_the_run_setup(tmp_path, monkeypatch):
    _recording_roster_reads(monkeypatch, fail=OSError("磁盘读取失败"))

    result = _materialize(["drop_zone", "roster"], tmp_path)

    assert [event.step_key for event in result.get_step_failure_events()] == ["roster"]
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error.cause.cls_name == "OSError" and "磁盘读取失败" in error.cause.message
    assert result.output_for_node("drop_zone") is not None  # the other steps ran


def test_a_run_without_the_roster_step_does_not_read_the_roster(tmp_path, monkeypatch):
    threads = _recording_roster_reads(monkeypatch)
    assert _materialize(["drop_zone"], tmp_path).success
    assert threads == []


def test_great_expectations_is_warmed_up_only_for_runs_that_execute_data_quality(tmp_path, monkeypatch):
    from fangpin import quality

    started: list[bool] = []
    monkeypatch.setattr(quality, "start_loading_great_expectations", lambda: started.append(True))
    _recording_roster_reads(monkeypatch)

    _materialize(["drop_zone"], tmp_path)
    assert started == []
    _materialize(["drop_zone", "data_quality"], tmp_path)  # fails without its upstream; set-up came first
    assert started == [True]


def test_with_a_roster_to_read_great_expectations_is_warmed_up_once_the_read_is_over(tmp_path, monkeypatch):
    """great-expectations' import (pure Python) does not run beside the roster's parse, where the two fought for the
    GIL: it starts when the read is over (also when the read failed), here a read made slow enough that a warm-up
    started with the run would come first."""
    import threading
    import time

    from fangpin import quality, reading

    events: list[tuple[str, str]] = []
    real = reading.read_roster

    def read_roster(*args, **kwargs):
        try:
            time.sleep(0.3)
            return real(*args, **kwargs)
        finally:
            events.append(("read over", threading.current_thread().name))

    monkeypatch.setattr(reading, "read_roster", read_roster)
    monkeypatch.setattr(quality, "start_loading_great_expectations",
                        lambda: events.append(("warm-up", threading.current_thread().name)))

    _materialize(["drop_zone", "roster", "data_quality"], tmp_path)  # no roster: the steps fail, set-up came first

    assert [event for event, _ in events] == ["read over", "warm-up"] and events[0][1] == "fangpin-roster-read"


# The intake steps; the department lists are one step (a multi-asset) named by any of its lists.
INTAKE = ["drop_zone", "roster", "roster_places", next(iter(registry().lists.values())).asset_name, "warehouse_month"]


def _roster_rows(data_dir: Path) -> int:
    import duckdb

    from fangpin.warehouse import warehouse_path

    with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as con:
        return con.execute("SELECT count(*) FROM roster.persons WHERE month = '2026-10'").fetchall()[0][0]


def test_the_roster_is_written_beside_the_lists_step_inside_the_months_one_transaction(tmp_path, monkeypatch):
    """The roster step begins warehouse_month's transaction and writes the roster's tables into it in a background
    thread while department_lists runs; warehouse_month finishes it. A month whose lists step fails writes none of
    it: the begun transaction is never committed, and closing the run's connection rolls it back."""
    import threading

    from fangpin import demo, ingest

    source = tmp_path / "source"
    demo.generate(source, months=["2026-10"], persons=600)
    failing, passing = tmp_path / "failing", tmp_path / "passing"
    for data_dir in (failing, passing):
        shutil.copytree(source / "raw", data_dir / "raw")
    threads: list[str] = []
    write_roster = ingest.write_roster
    monkeypatch.setattr(ingest, "write_roster", lambda *args: threads.append(threading.current_thread().name)
                        or write_roster(*args))

    def unreadable_lists(*args):
        raise OSError("名单目录无法读取")

    with monkeypatch.context() as patch:
        patch.setattr(ingest, "ingest_lists", unreadable_lists)
        result = _materialize(INTAKE, failing)
    assert not result.success and threads == ["fangpin-warehouse_month"]  # written, then never committed
    assert _roster_rows(failing) == 0

    result = _materialize(INTAKE, passing)
    assert result.success and threads == ["fangpin-warehouse_month"] * 2
    assert _roster_rows(passing) == result.asset_value("roster").persons.height > 0


# --- work started early by one step, collected by another (FangpinData.start_ahead / collect) ------------------------

def _resource_with_steps(tmp_path, *steps: str):
    from pipelines.resources import FangpinData

    resource = FangpinData(data_dir=str(tmp_path))
    resource._steps = frozenset(steps)
    return resource


def test_work_started_early_is_collected_once_by_its_step_for_its_month(tmp_path):
    import threading

    resource = _resource_with_steps(tmp_path, "township_workbooks")
    where: list[str] = []

    def prepare():
        where.append("prepare in " + threading.current_thread().name)
        return lambda: where.append("work in " + threading.current_thread().name) or "early"

    resource.start_ahead("township_workbooks", "2026-10", prepare)
    assert resource.collect("township_workbooks", "2026-10", lambda: "now") == ("early", True)
    assert resource.collect("township_workbooks", "2026-10", lambda: "now") == ("now", False)  # taken once
    assert where == ["prepare in MainThread", "work in fangpin-township_workbooks"]
    resource.start_ahead("township_workbooks", "2026-10", prepare)
    assert resource.collect("township_workbooks", "2026-09", lambda: "now") == ("now", False)  # another month's


def test_no_work_is_started_for_a_step_the_run_does_not_have_or_when_preparing_it_fails(tmp_path):
    resource = _resource_with_steps(tmp_path, "township_workbooks")
    prepared: list[str] = []
    resource.start_ahead("county_dashboard", "2026-10", lambda: prepared.append("dashboard") or (lambda: "early"))

    def failing():
        raise ValueError("工作簿密码文件不存在")

    resource.start_ahead("township_workbooks", "2026-10", failing)
    assert prepared == []
    assert resource.collect("county_dashboard", "2026-10", lambda: "now") == ("now", False)
    assert resource.collect("township_workbooks", "2026-10", lambda: "now") == ("now", False)  # the step reports it


def test_an_error_of_work_started_early_is_raised_in_the_step_that_collects_it(tmp_path):
    resource = _resource_with_steps(tmp_path, "township_workbooks")

    def work():
        raise OSError("磁盘已满 disk full")

    resource.start_ahead("township_workbooks", "2026-10", lambda: work)
    with pytest.raises(OSError, match="磁盘已满"):
        resource.collect("township_workbooks", "2026-10", lambda: "now")


def test_every_file_a_township_returns_is_read_or_rejected_whatever_its_suffix(tmp_path):
    """township_feedback reads the folder through feedback.read_feedback_dir: a WPS or old-Excel file and a workbook
    whose suffix is upper case each end up in quarantine with a reason, not silently left out of the month."""
    import duckdb

    folder = tmp_path / "raw" / "2026-10" / "feedback"
    folder.mkdir(parents=True)
    (folder / "甲镇.xls").write_bytes(b"old excel")
    (folder / "乙乡.XLSX").write_bytes(b"not a zip")
    (folder / "~$乙乡.XLSX").write_bytes(b"lock")  # Excel's lock file: not a return
    result = _materialize(["township_feedback"], tmp_path)
    assert result.success
    [metadata] = [event.materialization.metadata for event in result.get_asset_materialization_events()]
    assert metadata["files"].value == 2 and metadata["rejected"].value == 2
    with duckdb.connect(str(tmp_path / "warehouse" / "fangpin.duckdb"), read_only=True) as con:
        rejected = con.execute("SELECT source_file, reason_code FROM quarantine.rejected_rows WHERE list_key = 'feedback' "
                               "ORDER BY source_file").fetchall()
    assert rejected == [("raw/2026-10/feedback/乙乡.XLSX", "file_unreadable"),
                        ("raw/2026-10/feedback/甲镇.xls", "feedback_not_workbook")]


def _writes_then_fails(error: BaseException) -> dg.AssetsDefinition:
    """An asset that commits a table to the run's warehouse, then fails with `error`."""
    @dg.asset(name="writes_then_fails", required_resource_keys={"fangpin"})
    def writes_then_fails(context) -> None:
        with context.resources.fangpin.writer() as con:
            con.execute("CREATE TABLE IF NOT EXISTS marts.committed_before_failing AS SELECT 1 AS x")
        raise error

    return writes_then_fails


@pytest.mark.parametrize("how", ["dagster", "duckdb", "own failure"])
def test_an_interrupted_run_publishes_nothing_a_failed_one_its_whole_steps(tmp_path, how):
    """Ctrl-C published the steps finished so far: the queue from this run beside the risk marts of the last one.
    An interrupted run now leaves the warehouse as before it; a run failing on its own still publishes the steps
    that committed (README: re-running a month)."""
    import duckdb
    from dagster._core.errors import DagsterExecutionInterruptedError

    from fangpin import warehouse as fangpin_warehouse
    from pipelines.resources import FangpinData

    with fangpin_warehouse.writer(tmp_path) as con:  # the live warehouse as the last run left it
        con.execute("CREATE TABLE IF NOT EXISTS marts.last_run AS SELECT 1 AS x")
    error = {"dagster": DagsterExecutionInterruptedError(), "duckdb": RuntimeError("Query interrupted"),
             "own failure": ValueError("the step's own failure")}[how]
    interrupted = how != "own failure"  # Ctrl-C inside a DuckDB query fails the step with DuckDB's words
    result = dg.materialize([_writes_then_fails(error)], raise_on_error=False, instance=dg.DagsterInstance.ephemeral(),
                            resources={"fangpin": FangpinData(data_dir=str(tmp_path))})
    assert not result.success
    with duckdb.connect(str(fangpin_warehouse.warehouse_path(tmp_path)), read_only=True) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables "
                                                "WHERE table_schema = 'marts'").fetchall()}
    assert "last_run" in tables
    assert ("committed_before_failing" in tables) is not interrupted
    assert not fangpin_warehouse.working_copy_path(fangpin_warehouse.warehouse_path(tmp_path)).exists()


def test_the_cli_answers_a_file_for_a_folder_and_a_read_only_disk_in_words(tmp_path, monkeypatch, capsys):
    """`fangpin demo --data-dir <a file>` ended in NotADirectoryError, `fangpin snapshot` on a read-only data
    directory in OSError: [Errno 30] Read-only file system (tracebacks)."""
    from fangpin import cli, snapshot

    a_file = tmp_path / "data.txt"
    a_file.write_text("not a folder")
    assert cli.main(["demo", "--data-dir", str(a_file)]) == 2
    assert "是一个文件" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(tmp_path / "warehouse" / "fangpin.writer.lock"))

    monkeypatch.setattr(snapshot, "build_snapshot", read_only)
    monkeypatch.setenv(snapshot.KEY_FILE_ENV, str(tmp_path / "key"))
    assert cli.main(["snapshot", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "磁盘是只读的" in err and "fangpin.writer.lock" in err and "Traceback" not in err


def test_workbooks_are_written_aside_and_replace_the_exports_only_in_their_step(tmp_path):
    """The workbooks are written from warning_queue's end on, encrypted in the workbooks step: a run interrupted in
    between left this run's files (plaintext ones, where passwords are set) in exports/<month>/ beside a warehouse
    kept as before the run. They are now written aside and replace the exports in their step."""
    import polars as pl

    from assets.warnings import _workbooks_writer
    from fangpin import warehouse as fangpin_warehouse
    from pipelines.resources import FangpinData
    from test_feedback import household

    queue = pl.DataFrame([household("A001", "甲镇", "赵一", "360799198001011111", 3.0)])
    with fangpin_warehouse.writer(tmp_path) as con:
        fangpin_warehouse.replace_month(con, "marts.warning_queue", "2026-10", queue)
    previous = tmp_path / "exports" / "2026-10" / "甲镇.xlsx"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"the workbook the townships were sent last time")
    resource = FangpinData(data_dir=str(tmp_path))

    _workbooks_writer(resource, "2026-10")()  # warning_queue's part; the run is interrupted here

    assert previous.read_bytes() == b"the workbook the townships were sent last time"
    result = _materialize(["township_workbooks"], tmp_path)  # the next run's workbooks step
    assert result.success
    assert previous.read_bytes().startswith(b"PK")  # this run's workbook, in place
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["2026-10"]  # nothing left aside

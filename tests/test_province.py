"""A province runs as month x county partitions (issue 5, item 4): each county's month is independent, and the
provincial marts built from the partitions equal what each county gets from its own one-run month.

Two small demo counties are generated under `counties/`; the province runs them as two county partitions (in two
worker processes side by side) plus the provincial marts (`fangpin province`), a copy of the province runs as ONE
Dagster run (`fangpin province --one-run`, pipelines.one_run), and a copy of each county runs alone through the
county deployment (`fangpin run`). Every month table of each county's warehouse, and the provincial marts, must be
identical row for row.
"""
from __future__ import annotations

import shutil

import duckdb
import pytest

MONTH = "2026-10"
COUNTIES = {"360701": 71, "360702": 72}  # county folder -> demo seed
WALL_CLOCK = {"first_seen", "checked_at", "exported_at"}


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    from fangpin import cli, demo

    root = tmp_path_factory.mktemp("province")
    patch = pytest.MonkeyPatch()
    patch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    try:
        for county, seed in COUNTIES.items():
            demo.generate(root / "province" / "counties" / county, months=[MONTH], persons=400, seed=seed)
            shutil.copytree(root / "province" / "counties" / county, root / "alone" / county)
        shutil.copytree(root / "province", root / "one_run")
        province_ok = cli.run_province(MONTH, root / "province", workers=2)  # two county processes side by side
        one_run_ok = cli.run_province_in_one_run(MONTH, root / "one_run", workers=2)  # two worker processes
        alone_ok = {county: cli.run_month(MONTH, root / "alone" / county) for county in COUNTIES}
    finally:
        patch.undo()
    return {"root": root, "province_ok": province_ok, "one_run_ok": one_run_ok, "alone_ok": alone_ok}


def _rows(path, table: str, where: str = "month = ?", params=(MONTH,)) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall() if c not in WALL_CLOCK | {"county"}]
        select = ", ".join(f'"{c}"' for c in columns)
        return con.execute(f"SELECT {select} FROM {table} WHERE {where} ORDER BY ALL", list(params)).fetchall()


def _month_tables(path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return [t for (t,) in con.execute(
            "SELECT DISTINCT c.table_schema || '.' || c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.column_name = 'month' AND t.table_type = 'BASE TABLE' AND c.table_schema <> 'audit' "
            "ORDER BY 1").fetchall()]


def test_the_province_and_each_county_alone_both_succeed(province):
    assert province["province_ok"] and province["one_run_ok"]
    assert all(province["alone_ok"].values()), province["alone_ok"]


def test_the_province_as_one_run_gives_the_marts_of_its_county_partitions(province):
    """Issue 5: a province run as county partitions and as one run give identical provincial marts."""
    root = province["root"]
    partitions, one_run = (root / name / "warehouse" / "fangpin.duckdb" for name in ("province", "one_run"))
    for table in ("province.township_risk", "province.village_risk", "province.county_risk"):
        with duckdb.connect(str(partitions), read_only=True) as con:
            expected = con.execute(f"SELECT * FROM {table} WHERE month = ? ORDER BY ALL", [MONTH]).fetchall()
        with duckdb.connect(str(one_run), read_only=True) as con:
            assert con.execute(f"SELECT * FROM {table} WHERE month = ? ORDER BY ALL", [MONTH]).fetchall() == expected
        assert expected, f"{table} is empty: the comparison proves nothing"


def test_each_county_of_the_one_run_equals_its_partition(province):
    """Not only the marts: every month table of each county's warehouse, and the same township workbooks."""
    root = province["root"]
    for county in COUNTIES:
        partitioned, one_run = (root / name / "counties" / county for name in ("province", "one_run"))
        warehouse = partitioned / "warehouse" / "fangpin.duckdb"
        for table in _month_tables(warehouse):
            assert _rows(one_run / "warehouse" / "fangpin.duckdb", table) == _rows(warehouse, table), \
                f"{county} {table} differs"
        workbooks = sorted(p.name for p in (partitioned / "exports" / MONTH).iterdir())
        assert workbooks == sorted(p.name for p in (one_run / "exports" / MONTH).iterdir())
        assert any(name.endswith(".xlsx") for name in workbooks)
        # byte for byte: a partition's run writes them beside its later steps (FangpinData.start_ahead), the one
        # run in the township_workbooks step
        for name in (name for name in workbooks if name.endswith(".xlsx")):
            pair = [(folder / "exports" / MONTH / name).read_bytes() for folder in (partitioned, one_run)]
            assert pair[0] == pair[1], f"{county} {name} differs"


def test_the_one_run_is_one_dagster_run_that_records_every_county_partition(province, monkeypatch):
    """No run per county (that is what makes it quicker), but the run records each county asset as materialised in
    its month x county partition (with its body's metadata), and the provincial marts in the month's."""
    import dagster as dg

    from pipelines.province import COUNTY_ASSETS

    monkeypatch.setenv("DAGSTER_HOME", str(province["root"] / "dagster_home"))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="province_one_run"))
        assert [(run.status, run.tags["dagster/partition"]) for run in runs] == [(dg.DagsterRunStatus.SUCCESS, MONTH)]
        county_runs = instance.get_runs(dg.RunsFilter(job_name="county_month"))
        assert len(county_runs) == len(COUNTIES)  # the partitions' runs only, none from the one run
        events = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                                              limit=10_000).records
    recorded = {(e.asset_key, e.partition_key) for e in events}
    county_keys = {key for asset in COUNTY_ASSETS for key in asset.keys}
    assert recorded == {(dg.AssetKey("province_risk"), MONTH)} | {
        (key, f"{county}|{MONTH}") for key in county_keys for county in COUNTIES}
    roster = next(e for e in events if e.asset_key == dg.AssetKey("roster")).asset_materialization
    assert roster.metadata["persons"].value > 0 and "step_seconds" in roster.metadata


def test_each_county_partition_equals_the_county_run_alone(province):
    """Same files, two deployments: every month table of the county's warehouse is identical."""
    root = province["root"]
    for county in COUNTIES:
        partitioned = root / "province" / "counties" / county / "warehouse" / "fangpin.duckdb"
        alone = root / "alone" / county / "warehouse" / "fangpin.duckdb"
        tables = _month_tables(alone)
        assert "marts.warning_queue" in tables and "marts.township_risk" in tables
        for table in tables:
            rows = _rows(alone, table)
            assert _rows(partitioned, table) == rows, f"{county} {table} differs"
        assert _rows(alone, "marts.warning_queue"), f"{county}: the demo warned nobody, the comparison proves little"


def test_provincial_marts_are_the_counties_marts_with_their_county(province):
    root = province["root"]
    provincial = root / "province" / "warehouse" / "fangpin.duckdb"
    for county in COUNTIES:
        alone = root / "alone" / county / "warehouse" / "fangpin.duckdb"
        for table, mart in (("province.township_risk", "marts.township_risk"),
                            ("province.village_risk", "marts.village_risk")):
            mine = _rows(provincial, table, "month = ? AND county = ?", (MONTH, county))
            assert mine and mine == _rows(alone, mart), f"{county} {table}"


def test_county_risk_has_one_row_per_county_adding_up_its_townships(province):
    provincial = province["root"] / "province" / "warehouse" / "fangpin.duckdb"
    with duckdb.connect(str(provincial), read_only=True) as con:
        rows = con.execute("SELECT county, ran, townships, warned_households FROM province.county_risk "
                           "WHERE month = ? ORDER BY county", [MONTH]).fetchall()
        sums = dict(con.execute("SELECT county, sum(warned_households) FROM province.township_risk WHERE month = ? "
                                "GROUP BY county", [MONTH]).fetchall())
    assert [r[0] for r in rows] == sorted(COUNTIES)
    for county, ran, townships, warned in rows:
        assert ran and townships > 0 and warned == sums[county]


def test_each_county_writes_only_its_own_folder(province):
    """One writer per warehouse file: the county partitions never touch each other's drop zone or exports."""
    root = province["root"] / "province"
    for county in COUNTIES:
        exports = root / "counties" / county / "exports" / MONTH
        assert (exports / "dashboard.html").exists()
    assert not (root / "exports").exists() and not (root / "raw").exists()


def test_new_county_folders_become_partitions_and_the_schedule_runs_each_county(tmp_path, monkeypatch):
    """The sensor registers counties found under counties/; on the 11th the schedule asks for one run per county,
    each tagged with its county so the run queue allows one writer per county file and counties in parallel."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import dagster as dg

    from pipelines.jobs import WRITER_TAG_KEY
    from pipelines.province import counties_sensor, county_months_schedule

    for county in ("360702", "360701"):
        (tmp_path / "counties" / county / "raw").mkdir(parents=True)
    (tmp_path / "counties" / "notes").mkdir()  # no drop zone: not a county
    monkeypatch.setenv("FANGPIN_DATA_DIR", str(tmp_path))
    with dg.instance_for_test() as instance:
        result = counties_sensor(dg.build_sensor_context(instance=instance))
        [request] = result.dynamic_partitions_requests
        assert sorted(request.partition_keys) == ["360701", "360702"]
        instance.add_dynamic_partitions("county", list(request.partition_keys))
        again = counties_sensor(dg.build_sensor_context(instance=instance))
        assert again.dynamic_partitions_requests == []
        when = datetime(2026, 11, 11, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        runs = county_months_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
    assert [(r.partition_key.keys_by_dimension["county"], r.partition_key.keys_by_dimension["month"]) for r in runs] \
        == [("360701", MONTH), ("360702", MONTH)]
    assert [r.tags[WRITER_TAG_KEY] for r in runs] == ["360701", "360702"]


def test_workers_get_shares_of_about_equal_size():
    """Two big and two small counties: every other county in name order would give one worker both big ones."""
    from fangpin.cli import balanced_shares

    sizes = {"360701": 900, "360702": 100, "360703": 800, "360704": 100}
    assert balanced_shares(sizes, 2) == [["360701", "360704"], ["360702", "360703"]]
    assert balanced_shares(sizes, 1) == [sorted(sizes)]
    assert balanced_shares({"360701": 5}, 4) == [["360701"]]  # no empty share, so no idle child process


def test_a_worker_process_runs_its_share_itself(monkeypatch, tmp_path):
    """`--workers N` deals the counties to N children, each told to run its share with one worker: a child that
    split again would fork processes without end. Each child's thread pools get its share of the cores."""
    import os
    import subprocess

    from fangpin import cli, province

    for county in ("a", "b", "c"):
        (tmp_path / "counties" / county / "raw").mkdir(parents=True)
    shares = cli.balanced_shares(province.month_bytes(tmp_path, MONTH, ["a", "b", "c"]), 2)  # empty: by name
    started, environments = [], []
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)

    class Child:
        def __init__(self, command, env):
            started.append(command)
            environments.append(env)

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Child)
    cli._counties_in_workers(MONTH, tmp_path, shares)
    dealt = [command[command.index("--counties") + 1] for command in started]
    assert dealt == ["a,c", "b"]
    assert all(command[command.index("--workers") + 1] == "1" for command in started)
    assert all(env["POLARS_MAX_THREADS"] == "2" for env in environments)  # each its share of the four cores


def test_a_late_file_reruns_only_its_own_county_month(tmp_path, monkeypatch):
    """A department file arriving late in one county's drop zone asks for a run of that county's month only; the
    other counties are untouched (and in the late county's run only the new file is parsed: test_readcache)."""
    import dagster as dg

    from pipelines.jobs import WRITER_TAG_KEY
    from pipelines.province import counties_sensor

    for county in ("360701", "360702"):
        (tmp_path / "counties" / county / "raw" / MONTH / "civil_affairs").mkdir(parents=True)
        (tmp_path / "counties" / county / "raw" / MONTH / "civil_affairs" / "低保.csv").write_text("身份证号码\n")
    monkeypatch.setenv("FANGPIN_DATA_DIR", str(tmp_path))
    with dg.instance_for_test() as instance:
        first = counties_sensor(dg.build_sensor_context(instance=instance))
        assert first.run_requests == []  # first sight: the schedule runs these months
        instance.add_dynamic_partitions("county", list(first.dynamic_partitions_requests[0].partition_keys))
        quiet = counties_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert quiet.run_requests == []

        late = tmp_path / "counties" / "360702" / "raw" / MONTH / "health"
        late.mkdir()
        (late / "大病.csv").write_text("身份证号码\n")
        (tmp_path / "counties" / "360703" / "raw" / MONTH).mkdir(parents=True)  # a new county: registered only
        after = counties_sensor(dg.build_sensor_context(instance=instance, cursor=quiet.cursor))
        [request] = after.run_requests
        assert request.partition_key.keys_by_dimension == {"month": MONTH, "county": "360702"}
        assert request.tags[WRITER_TAG_KEY] == "360702" and request.tags["fangpin/trigger"] == "late-files"
        assert list(after.dynamic_partitions_requests[0].partition_keys) == ["360703"]
        again = counties_sensor(dg.build_sensor_context(instance=instance, cursor=after.cursor))
        assert again.run_requests == []  # once per change


def _add_run(instance, job_name: str, tags: dict[str, str]):
    """A run as the queue starts it (Dagster's own record, without executing anything)."""
    import uuid

    import dagster as dg

    return instance.add_run(dg.DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()), tags=tags,
                                          status=dg.DagsterRunStatus.STARTED))


def _finish(instance, run, status: str) -> None:
    """The run ends as a real one does: its end event sets the status and the end time."""
    from dagster._core.events import DagsterEvent

    instance.report_dagster_event(DagsterEvent(event_type_value=status, job_name=run.job_name), run.run_id)


def test_provincial_marts_wait_until_no_county_run_of_the_month_is_left():
    """When every county of the month starts at once (county_months_schedule), the marts are built once, after the
    last county run of the month ends (a failed county does not hold them back), and again after a late county run."""
    import dagster as dg

    from pipelines.province import months_awaiting_marts, province_marts_sensor

    def county_tags(county: str) -> dict[str, str]:
        return {"dagster/partition/month": MONTH, "dagster/partition/county": county}

    with dg.instance_for_test() as instance:
        first = _add_run(instance, "county_month", county_tags("360701"))
        second = _add_run(instance, "county_month", county_tags("360702"))
        _finish(instance, first, "PIPELINE_SUCCESS")
        assert months_awaiting_marts(instance) == {}  # 360702 still running
        _finish(instance, second, "PIPELINE_FAILURE")
        assert months_awaiting_marts(instance) == {MONTH: second.run_id}
        [request] = province_marts_sensor(dg.build_sensor_context(instance=instance))
        assert request.partition_key == MONTH and request.run_key == f"province-marts-{MONTH}-{second.run_id}"

        _add_run(instance, "province_marts", {"dagster/partition": MONTH})  # the requested run, queued
        assert months_awaiting_marts(instance) == {}
        late = _add_run(instance, "county_month", county_tags("360702"))
        _finish(instance, late, "PIPELINE_SUCCESS")
        assert months_awaiting_marts(instance) == {MONTH: late.run_id}


def test_a_province_run_from_the_command_line_leaves_no_marts_to_build(province, monkeypatch):
    """`fangpin province` builds the marts after its county runs, so the sensor has nothing to add."""
    import dagster as dg

    from pipelines.province import months_awaiting_marts

    monkeypatch.setenv("DAGSTER_HOME", str(province["root"] / "dagster_home"))
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs(dg.RunsFilter(job_name="county_month"))) == len(COUNTIES)
        assert months_awaiting_marts(instance) == {}


def test_counties_that_have_not_run_the_month_are_listed_not_left_out(province, tmp_path):
    """Built from a province where one county has no warehouse yet, one a warehouse from before the risk marts and
    one ran another month only: the two that ran are copied whole, the other three are listed with ran = false, and
    building again gives the same rows (the month is replaced, not added to)."""
    from fangpin.province import build_province_marts
    from fangpin.warehouse import writer

    source = province["root"] / "province" / "counties"
    counties = tmp_path / "counties"
    for county in COUNTIES:
        shutil.copytree(source / county / "warehouse", counties / county / "warehouse")
        (counties / county / "raw").mkdir()
    for county in ("360703", "360704", "360705"):
        (counties / county / "raw").mkdir(parents=True)
    (counties / "360704" / "warehouse").mkdir()
    with duckdb.connect(str(counties / "360704" / "warehouse" / "fangpin.duckdb")) as old:
        old.execute("CREATE TABLE staging_rows (month VARCHAR)")  # no marts schema at all
    shutil.copytree(source / "360701" / "warehouse", counties / "360705" / "warehouse")
    with duckdb.connect(str(counties / "360705" / "warehouse" / "fangpin.duckdb")) as other_month:
        other_month.execute("UPDATE marts.township_risk SET month = '2026-09'")

    with writer(tmp_path) as con:  # the province's own warehouse, as the province_risk asset opens it
        first = build_province_marts(con, MONTH, tmp_path)
        again = build_province_marts(con, MONTH, tmp_path)
        ran = dict(con.execute("SELECT county, ran FROM province.county_risk WHERE month = ?", [MONTH]).fetchall())
        copied = {county: con.execute("SELECT * EXCLUDE (county) FROM province.village_risk WHERE county = ? "
                                      "ORDER BY ALL", [county]).fetchall() for county in ran}
    assert first == again and first["province.county_risk"] == 5
    assert ran == {"360701": True, "360702": True, "360703": False, "360704": False, "360705": False}
    for county in COUNTIES:
        with duckdb.connect(str(source / county / "warehouse" / "fangpin.duckdb"), read_only=True) as alone:
            expected = alone.execute("SELECT * FROM marts.village_risk WHERE month = ? ORDER BY ALL", [MONTH]).fetchall()
        assert copied[county] == expected and expected
    assert copied["360703"] == copied["360704"] == copied["360705"] == []


def test_county_runs_side_by_side_are_one_per_core_as_far_as_memory_holds(monkeypatch, tmp_path):
    """The run queue (the daemon's county runs) and `fangpin province` take the same number: more runs than cores
    only hold more memory, and each county run needs up to ~3 GB."""
    import os

    from fangpin import cli, instance

    def machine(cores: int, gigabytes: int) -> None:
        pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": gigabytes * 10**9 // 4096}
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        monkeypatch.setattr(os, "sysconf", lambda name: pages[name])

    machine(cores=2, gigabytes=24)
    assert instance.side_by_side_runs() == 2
    assert "max_concurrent_runs: 2 " in instance.dagster_yaml(tmp_path)
    asked = {}
    monkeypatch.setattr(cli, "run_province", lambda month, root, workers, only, marts: asked.update(workers=workers))
    cli.main(["province", "--month", MONTH, "--data-dir", str(tmp_path)])
    assert asked == {"workers": 2}
    machine(cores=16, gigabytes=24)
    assert instance.side_by_side_runs() == 8  # memory, not cores, is the limit
    machine(cores=4, gigabytes=2)
    assert instance.side_by_side_runs() == 1


def test_on_one_machine_the_schedule_starts_one_run_that_runs_every_county(tmp_path, monkeypatch):
    """The daemon would start each county run in a new process (imports again, ~9 CPU-s a county): on the 11th the
    province's default schedule asks for one `province_month` run, which runs `fangpin province` for the month;
    the one-run-per-county schedule is there, stopped, for run launchers that spread runs over machines."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import dagster as dg

    import pipelines.province as location

    when = datetime(2026, 11, 11, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    request = location.province_month_schedule(dg.build_schedule_context(scheduled_execution_time=when))
    assert request.partition_key == MONTH
    assert location.province_month_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert location.county_months_schedule.default_status == dg.DefaultScheduleStatus.STOPPED

    commands, exit_code = [], {"code": 0}

    def run(command: list[str]) -> int:
        commands.append(command)
        return exit_code["code"]

    monkeypatch.setattr(location, "run_in_own_process_group", run)
    monkeypatch.setenv("FANGPIN_DATA_DIR", str(tmp_path))
    job = location.defs.get_job_def("province_month")
    with dg.instance_for_test() as instance:
        empty = job.execute_in_process(partition_key=MONTH, instance=instance, raise_on_error=False)
        (tmp_path / "counties" / "360702" / "raw").mkdir(parents=True)
        assert job.execute_in_process(partition_key=MONTH, instance=instance).success
        exit_code["code"] = 1  # a county failed: it has no successful run of the month
        failed = job.execute_in_process(partition_key=MONTH, instance=instance, raise_on_error=False)
    assert not empty.success and "没有县的文件夹" in _failure(empty)
    assert not failed.success and "1 个县未完成：360702" in _failure(failed) and "退出码 1" in _failure(failed)
    assert [command[2:] for command in commands] == [["fangpin.cli", "province", "--month", MONTH, "--data-dir", str(tmp_path)]] * 2
    assert not (tmp_path / "warehouse").exists()  # the province's warehouse is the marts' alone: never opened here


def test_a_one_run_with_a_failed_county_builds_the_marts_and_fails_naming_it(tmp_path):
    """province_one_run goes on past a county that fails (here: no roster for the month), builds the provincial
    marts (the county listed as not run) and then fails, naming the county; without county folders it says where
    they belong, like province_month."""
    import dagster as dg

    import pipelines.province as location

    job = location.defs.get_job_def("province_one_run")
    config = {"ops": {"run_province_in_one_run": {"config": {"workers": 1}}},
              "resources": {"fangpin": {"config": {"data_dir": str(tmp_path)}}}}
    with dg.instance_for_test() as instance:
        empty = job.execute_in_process(partition_key=MONTH, instance=instance, run_config=config,
                                       raise_on_error=False)
        (tmp_path / "counties" / "360702" / "raw" / MONTH).mkdir(parents=True)
        failed = job.execute_in_process(partition_key=MONTH, instance=instance, run_config=config,
                                        raise_on_error=False)
    assert not empty.success and "没有县的文件夹" in _failure(empty)
    assert not failed.success and "1 个县未完成：360702" in _failure(failed)
    with duckdb.connect(str(tmp_path / "warehouse" / "fangpin.duckdb"), read_only=True) as con:
        assert con.execute("SELECT county, ran, left_out LIKE '%最近一次运行未成功%' FROM province.county_risk "
                           "WHERE month = ?", [MONTH]).fetchall() == [("360702", False, True)]


def _failure(result) -> str:
    """The description of the first step failure of a run's result."""
    return result.get_step_failure_events()[0].step_failure_data.user_failure_data.description


def test_interrupting_the_province_run_interrupts_its_workers(monkeypatch):
    """Terminating province_month from the UI interrupts the command's whole process group (its worker processes
    included), with SIGINT, so each county run in progress ends as a run Dagster records, not a killed process;
    a group still there after the grace period is killed."""
    import os
    import signal
    import subprocess

    from pipelines.province import run_in_own_process_group

    def interrupted(stops_when_asked: bool) -> list[tuple[int, int]]:
        signals = []

        class Command:
            pid = 4242

            def __init__(self, command, start_new_session):
                assert start_new_session  # its own process group, so the workers can be reached
                self.waits = []

            def wait(self, timeout=None):
                self.waits.append(timeout)
                if len(self.waits) == 1:
                    raise KeyboardInterrupt  # the run is terminated while the counties run
                if timeout is not None and not stops_when_asked:
                    raise subprocess.TimeoutExpired("fangpin", timeout)
                return -2

        monkeypatch.setattr(subprocess, "Popen", Command)
        monkeypatch.setattr(os, "killpg", lambda pid, sig: signals.append((pid, sig)))
        with pytest.raises(KeyboardInterrupt):
            run_in_own_process_group(["fangpin", "province"])
        return signals

    assert interrupted(stops_when_asked=True) == [(4242, signal.SIGINT)]
    assert interrupted(stops_when_asked=False) == [(4242, signal.SIGINT), (4242, signal.SIGKILL)]


def test_provincial_marts_wait_while_a_province_month_run_is_going():
    """Between two counties of a worker no county run is going; the province_month run of the month still is."""
    import dagster as dg

    from pipelines.province import months_awaiting_marts

    with dg.instance_for_test() as instance:
        county = _add_run(instance, "county_month", {"dagster/partition/month": MONTH})
        _finish(instance, county, "PIPELINE_SUCCESS")
        whole = _add_run(instance, "province_month", {"dagster/partition": MONTH})
        assert months_awaiting_marts(instance) == {}
        _finish(instance, whole, "PIPELINE_SUCCESS")
        assert months_awaiting_marts(instance) == {MONTH: county.run_id}


def test_a_province_without_county_folders_is_told_where_they_belong(tmp_path, monkeypatch, capsys):
    """The command line and province_month say the same thing (fangpin.province.no_counties_message)."""
    from fangpin import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "counties" / "notes").mkdir(parents=True)  # a folder without a drop zone is not a county
    assert cli.main(["province", "--month", MONTH, "--data-dir", str(tmp_path), "--workers", "1"]) == 2
    assert f"counties/<县代码>/raw/{MONTH}/" in capsys.readouterr().err


def test_a_damaged_county_warehouse_is_left_out_of_the_provincial_marts_not_fatal(tmp_path):
    """One county's overwritten warehouse file failed the marts of every county with DuckDB's English error."""
    import duckdb

    from fangpin import province as province_marts
    from fangpin import warehouse as fangpin_warehouse
    from pipelines.resources import county_dir

    for county in ("360701", "360702"):
        (county_dir(tmp_path, county) / "raw" / MONTH).mkdir(parents=True)
    with fangpin_warehouse.writer(county_dir(tmp_path, "360701")):
        pass  # a county warehouse with the schema and no rows for the month
    damaged = fangpin_warehouse.warehouse_path(county_dir(tmp_path, "360702"))
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a duckdb file" * 100)

    with duckdb.connect() as con:
        fangpin_warehouse.ensure_schema(con)  # the province's own warehouse holds the county DDL too
        counts = province_marts.build_province_marts(con, MONTH, tmp_path)
        rows = con.execute("SELECT county, ran, left_out FROM province.county_risk ORDER BY county").fetchall()

    assert counts["province.county_risk"] == 2
    assert rows[0] == ("360701", False, None)
    assert rows[1][:2] == ("360702", False) and "损坏" in rows[1][2]
    assert damaged.read_bytes() == b"not a duckdb file" * 100


def test_a_county_whose_latest_run_failed_is_left_out_not_shown_with_old_figures(tmp_path):
    """A county whose month failed this time (after an earlier run succeeded) stayed in province.county_risk as
    ran = true with the earlier run's figures, while its latest files were never processed."""
    import duckdb

    from fangpin import province as province_marts
    from fangpin import warehouse as fangpin_warehouse
    from pipelines.resources import county_dir

    for county in ("360701", "360702"):
        (county_dir(tmp_path, county) / "raw" / MONTH).mkdir(parents=True)
        with fangpin_warehouse.writer(county_dir(tmp_path, county)) as con:  # both ran once, with one township
            con.execute("INSERT INTO marts.township_risk (month, township, households, warned_households, level, "
                        "level_rank, reasons) VALUES (?, '城关镇', 100, 5, 'green', 0, '—')", [MONTH])

    with duckdb.connect() as con:
        fangpin_warehouse.ensure_schema(con)
        province_marts.build_province_marts(con, MONTH, tmp_path, failed=("360702",))
        rows = con.execute("SELECT county, ran, warned_households, left_out FROM province.county_risk "
                           "ORDER BY county").fetchall()
        townships = con.execute("SELECT county FROM province.township_risk").fetchall()

    assert rows[0] == ("360701", True, 5, None)
    assert rows[1][:3] == ("360702", False, None) and "最近一次运行未成功" in rows[1][3]
    assert townships == [("360701",)]


def test_province_risk_leaves_out_a_county_whose_latest_partition_run_failed(tmp_path):
    """The province_risk asset reads each county month's latest run from the instance (the record, whichever
    process ran it): a failed one is left out of the marts and named."""
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    from assets.partitions import PARTITION_TAG
    from assets.province import province_risk
    from fangpin import warehouse as fangpin_warehouse
    from pipelines.resources import FangpinData, county_dir

    for county in ("360701", "360702"):
        (county_dir(tmp_path, county) / "raw" / MONTH).mkdir(parents=True)
        with fangpin_warehouse.writer(county_dir(tmp_path, county)) as con:
            con.execute("INSERT INTO marts.township_risk (month, township, households, warned_households, level, "
                        "level_rank, reasons) VALUES (?, '城关镇', 100, 5, 'green', 0, '—')", [MONTH])
    with dg.instance_for_test() as instance:
        for county, status in (("360701", dg.DagsterRunStatus.SUCCESS), ("360702", dg.DagsterRunStatus.FAILURE)):
            key = str(dg.MultiPartitionKey({"month": MONTH, "county": county}))
            create_run_for_test(instance, job_name="county_month", tags={PARTITION_TAG: key}, status=status)
        result = dg.materialize([province_risk], partition_key=MONTH, instance=instance,
                                resources={"fangpin": FangpinData(data_dir=str(tmp_path))})
    assert result.success
    [metadata] = [event.materialization.metadata for event in result.get_asset_materialization_events()]
    assert metadata["counties_left_out"].value == ["360702"]
    with duckdb.connect(str(fangpin_warehouse.warehouse_path(tmp_path)), read_only=True) as con:
        assert con.execute("SELECT county FROM province.township_risk").fetchall() == [("360701",)]


def test_in_the_one_run_each_line_of_a_county_names_the_county_and_the_asset(tmp_path, monkeypatch, capsys):
    """In the one run two workers print side by side: each line of a county's assets names the county and the asset,
    as `fangpin run` names the step, and Dagster's console adds none of its own (timestamped, without the county)."""
    from pipelines import progress
    from pipelines.one_run import build_province_marts, run_county
    from pipelines.province import COUNTY_ASSETS

    monkeypatch.setattr(progress, "_terminal", None)  # lines to this test's stderr, not a copy another test took
    (tmp_path / "counties" / "360702" / "raw" / MONTH).mkdir(parents=True)  # a drop zone with nothing in it
    outcome = run_county(COUNTY_ASSETS, tmp_path, MONTH, "360702")
    printed = capsys.readouterr().err.splitlines()
    assert "roster" in outcome.failed  # no roster this month: the county stops there, with its lines printed
    assert any(line.startswith("  360702 drop_zone: ") for line in printed), printed
    assert not [line for line in printed if " - dagster - " in line]
    build_province_marts(tmp_path, MONTH, failed=("360702",))  # the provincial marts of the one run, likewise
    printed = capsys.readouterr().err.splitlines()
    assert any(line.startswith("  province_risk: ") and "360702" in line for line in printed), printed
    assert not [line for line in printed if " - dagster - " in line]

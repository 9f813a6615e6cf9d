"""The province in one run (pipelines.one_run) computes each county with the county assets invoked directly; it must
behave as a county run does: the same order, the same failures, the same blocking checks. (That its results equal
the partitions' is tests/test_province.py.)"""
from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines import one_run
from pipelines.province import COUNTY_ASSETS

MONTH = "2026-10"
COUNTY = "360703"


def test_every_asset_is_invoked_after_the_assets_it_depends_on():
    order = one_run.invocation_order(COUNTY_ASSETS)
    assert sorted(a.node_def.name for a in order) == sorted(a.node_def.name for a in COUNTY_ASSETS)
    own = {key for a in COUNTY_ASSETS for key in a.keys}
    done: set[dg.AssetKey] = set()
    for asset in order:
        assert (asset.dependency_keys & own) <= done | set(asset.keys), asset.node_def.name
        done |= set(asset.keys)


def test_only_a_failed_blocking_check_fails_the_step():
    lists = next(a for a in COUNTY_ASSETS if a.node_def.name == "department_lists")
    asset = "civil_affairs__dibao"
    one_run._raise_if_blocking(lists, dg.AssetCheckResult(asset_key=asset, check_name="delivered", passed=False))
    one_run._raise_if_blocking(lists, dg.AssetCheckResult(asset_key=asset, check_name="reconciles", passed=True))
    with pytest.raises(dg.Failure, match="reconciles"):
        one_run._raise_if_blocking(lists, dg.AssetCheckResult(asset_key=asset, check_name="reconciles", passed=False))


def test_the_counties_of_a_process_share_one_dagster_instance(monkeypatch, tmp_path):
    """Each county's asset context gets the process's one ephemeral instance, not a new one per county (which
    `build_asset_context` makes when given none: ~39 ms a county)."""
    made, given = [], []
    ephemeral, build = dg.DagsterInstance.ephemeral, dg.build_asset_context
    monkeypatch.setattr(dg.DagsterInstance, "ephemeral",
                        staticmethod(lambda *args, **kwargs: made.append(1) or ephemeral(*args, **kwargs)))
    monkeypatch.setattr(dg, "build_asset_context",
                        lambda *args, **kwargs: given.append(kwargs.get("instance")) or build(*args, **kwargs))
    one_run._invocation_instance.cache_clear()
    try:
        for county in ("360701", "360702"):
            assert one_run.run_county([], tmp_path, MONTH, county).ok
    finally:
        one_run._invocation_instance.cache_clear()
    assert len(made) == 1 and len(given) == 2
    assert given[0] is given[1] and isinstance(given[0], dg.DagsterInstance)


@pytest.fixture(scope="module")
def two_copies(tmp_path_factory):
    """One small county twice: as a one-run county and as a county_month run, both with a workbook passwords file
    that is configured but missing (the workbook and feedback steps fail; nothing else depends on them)."""
    from fangpin import cli, demo, protect
    from fangpin.instance import dagster_home

    root = tmp_path_factory.mktemp("one_run")
    patch = pytest.MonkeyPatch()
    patch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    patch.setenv(protect.PASSWORDS_ENV, str(root / "no-such-passwords.yaml"))
    try:
        demo.generate(root / "direct" / "counties" / COUNTY, months=[MONTH], persons=300, seed=73)
        shutil.copytree(root / "direct", root / "run")
        outcome = one_run.run_county_of_the_province(root / "direct", MONTH, COUNTY)
        dagster_home()
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("county", [COUNTY])
            key = dg.MultiPartitionKey({"month": MONTH, "county": COUNTY})
            result = cli._execute("pipelines.province", "county_month", key, root / "run", instance=instance)
            failed_steps = {event.step_key for event in result.get_step_failure_events()}
    finally:
        patch.undo()
    return {"root": root, "outcome": outcome, "failed_steps": failed_steps}


def test_every_step_run_has_its_seconds_and_the_process_cpu_it_took(two_copies):
    outcome = two_copies["outcome"]  # bench.steps reads step_cpu: failed steps count too, skipped ones cannot
    assert set(outcome.step_cpu) == set(outcome.steps) and "township_workbooks" in outcome.step_cpu
    assert all(cpu >= 0 for cpu in outcome.step_cpu.values())
    assert outcome.step_cpu["roster"] > 0  # reading and validating a roster is never free


def test_a_failing_step_fails_as_in_a_county_run_and_the_rest_goes_on(two_copies):
    outcome = two_copies["outcome"]
    assert set(outcome.failed) == two_copies["failed_steps"] == {"township_workbooks", "township_feedback"}
    assert not outcome.skipped and not outcome.ok  # township_risk and the dashboard do not need the workbooks
    assert "no-such-passwords.yaml" in outcome.failed["township_workbooks"]  # the clerk's message, not a traceback
    assert outcome.failed["township_workbooks"].startswith("工作簿密码文件"), outcome.failed  # no Python class first
    assert f"{COUNTY}: 失败 failed — township_workbooks：" in outcome.line()


def test_a_passwords_file_that_fails_writes_no_workbook_even_with_the_writing_started_after_the_queue(two_copies):
    """warning_queue starts the workbooks' writing (FangpinData.start_ahead) only once the passwords file is read."""
    for name in ("direct", "run"):
        exports = two_copies["root"] / name / "counties" / COUNTY / "exports" / MONTH
        assert (exports / "dashboard.html").exists() and not list(exports.glob("*.xlsx"))


def test_a_file_where_the_exports_folder_should_be_fails_its_steps_with_the_path_and_what_to_do(tmp_path):
    """The two steps that write exports fail with a message the clerk reads (pipelines.progress.clerk_message); the
    rest of the county goes on."""
    from fangpin import demo

    demo.generate(tmp_path / "counties" / COUNTY, months=[MONTH], persons=300, seed=73)
    blocker = tmp_path / "counties" / COUNTY / "exports" / MONTH
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    outcome = one_run.run_county_of_the_province(tmp_path, MONTH, COUNTY)
    assert set(outcome.failed) == {"township_workbooks", "county_dashboard"} and "warning_queue" in outcome.steps
    for message in outcome.failed.values():
        assert message.startswith(f"{blocker}：已有同名的文件或文件夹"), message


def test_what_a_failed_county_wrote_is_what_its_county_run_wrote(two_copies):
    """The warehouse is published at the end either way, as the run resource's teardown does."""
    warehouses = [two_copies["root"] / name / "counties" / COUNTY / "warehouse" / "fangpin.duckdb"
                  for name in ("direct", "run")]
    rows = []
    for path in warehouses:
        with duckdb.connect(str(path), read_only=True) as con:
            rows.append(con.execute("SELECT * FROM marts.township_risk WHERE month = ? ORDER BY ALL",
                                    [MONTH]).fetchall())
    assert rows[0] and rows[0] == rows[1]


def test_the_one_run_refuses_a_share_of_the_counties_or_no_marts(tmp_path, monkeypatch, capsys):
    """--counties and --no-marts are how `fangpin province` hands its workers a share; the one run is the whole."""
    from fangpin import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "counties" / COUNTY / "raw").mkdir(parents=True)
    for flags in (["--counties", COUNTY], ["--no-marts"]):
        assert cli.main(["province", "--month", MONTH, "--data-dir", str(tmp_path), "--one-run", *flags]) == 2
        assert "--one-run" in capsys.readouterr().err


def test_an_interrupted_one_run_starts_no_further_county(monkeypatch):
    """Terminating the run (or Ctrl-C) while workers are busy: the queued counties are cancelled, not run."""
    from concurrent.futures import Future

    shutdowns = []

    class Pool:
        def __init__(self, **options):
            pass

        def submit(self, *task):
            future = Future()
            future.set_exception(KeyboardInterrupt())  # as if the interrupt arrived while waiting for it
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            shutdowns.append(cancel_futures)

    monkeypatch.setattr(one_run, "ProcessPoolExecutor", Pool)
    with pytest.raises(KeyboardInterrupt):
        list(one_run.run_counties(Path("/nowhere"), MONTH, {"360701": 2, "360702": 1, "360703": 1}, workers=2))
    assert shutdowns == [True]


def test_each_county_is_handed_over_when_it_is_done_not_when_the_last_is(monkeypatch):
    """The run logs (and records in the UI) a county as soon as its worker is done: counties still running, or an
    interrupt after it, do not hold back one already done."""
    from concurrent.futures import Future

    futures, shutdowns = {}, []

    class Pool:
        def __init__(self, **options):
            pass

        def submit(self, task, province_dir, month, county):
            futures[county] = Future()
            if county == "360702":  # the smallest county's worker is done first
                futures[county].set_result(one_run.CountyOutcome(county))
            return futures[county]

        def shutdown(self, wait=True, cancel_futures=False):
            shutdowns.append(cancel_futures)

    monkeypatch.setattr(one_run, "ProcessPoolExecutor", Pool)
    outcomes = one_run.run_counties(Path("/nowhere"), MONTH, {"360701": 2, "360702": 1, "360703": 1}, workers=2)
    assert next(outcomes).county == "360702"  # while 360701 and 360703 are still running
    assert not shutdowns
    futures["360701"].set_exception(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        next(outcomes)
    assert shutdowns == [True] and not futures["360703"].done()


def test_the_one_run_cli_output_ends_with_the_province_not_with_bindings_noise(tmp_path):
    """Two workers printed 86 lines of DuckDB's nanobind "leaked" warnings at their exit, between the counties'
    lines and the province's summary: the workers now exit without the interpreter's teardown, as the CLI does."""
    import os
    import subprocess
    import sys

    from fangpin import demo

    for county, seed in (("360701", 1), ("360702", 2)):
        demo.generate(tmp_path / "counties" / county, months=[MONTH], persons=400, seed=seed)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    done = subprocess.run([sys.executable, "-m", "fangpin.cli", "province", "--month", MONTH, "--data-dir",
                           str(tmp_path), "--one-run", "--workers", "2"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "leaked" not in done.stderr + done.stdout
    assert done.stdout.rstrip().endswith("完成 done ==")

"""The instance fangpin sets up keeps Dagster's event log connections open (pipelines.event_log) and still writes
Dagster's own history: a stock instance on the same DAGSTER_HOME reads every run, event and check fangpin wrote."""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from fangpin import instance as fangpin_instance
from pipelines import event_log


@dg.asset(check_specs=[dg.AssetCheckSpec("has_rows", asset="tiny")])
def tiny():
    yield dg.Output([1, 2, 3])
    yield dg.AssetCheckResult(check_name="has_rows", passed=True)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return fangpin_instance.dagster_home()


def _stock_instance(home) -> dg.DagsterInstance:
    """An instance on the same folders with Dagster's default storage (no dagster.yaml)."""
    stock_home = home.parent / "stock_home"
    stock_home.mkdir()
    (stock_home / "history").symlink_to(home / "history")
    return dg.DagsterInstance.from_config(str(stock_home))


def test_the_fangpin_instance_uses_the_pooled_event_log(home):
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, event_log.PooledSqliteEventLogStorage)


def test_runs_written_through_kept_connections_read_back_with_dagsters_stock_storage(home):
    with dg.DagsterInstance.get() as instance:
        runs = [dg.materialize([tiny], instance=instance) for _ in range(3)]
    assert all(run.success for run in runs)
    with _stock_instance(home) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        for run in runs:
            kinds = {e.dagster_event_type for e in stock.all_logs(run.run_id) if e.dagster_event}
            assert {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
                    dg.DagsterEventType.RUN_SUCCESS} <= kinds
        latest = stock.get_latest_materialization_event(dg.AssetKey("tiny"))
        assert latest is not None and latest.run_id == runs[-1].run_id


def test_a_long_lived_process_keeps_only_the_latest_files_open(home):
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        for run in range(event_log.KEPT_ENGINES + 5):
            with storage.run_connection(f"run-{run}"):
                pass
        assert len(storage._engines) == event_log.KEPT_ENGINES
        assert f"run-{event_log.KEPT_ENGINES + 4}" in storage._engines and "run-0" not in storage._engines


def _deleted_files_held_open() -> list[str]:
    fds = Path("/proc/self/fd")
    return [target for target in (os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()) if "(deleted)" in target]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_wiping_the_history_closes_kept_connections_and_later_runs_are_stored(home):
    with dg.DagsterInstance.get() as instance:
        first = dg.materialize([tiny], instance=instance)
        instance.wipe()
        assert instance.get_runs() == [] and not list((home / "history" / "runs").glob(f"{first.run_id}.db"))
        assert not [f for f in _deleted_files_held_open() if str(home) in f]
        second = dg.materialize([tiny], instance=instance)
        assert second.success
        assert instance.get_latest_materialization_event(dg.AssetKey("tiny")).run_id == second.run_id


def test_an_earlier_fangpin_dagster_yaml_is_rewritten_and_a_users_own_is_kept(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = home / "dagster.yaml"
    config.write_text(fangpin_instance.WRITTEN_BY_FANGPIN + " (an older version)\ntelemetry:\n  enabled: false\n")
    fangpin_instance.dagster_home()
    assert "PooledSqliteEventLogStorage" in config.read_text()
    config.write_text("# my own settings\ntelemetry:\n  enabled: false\n")
    fangpin_instance.dagster_home()
    assert config.read_text().startswith("# my own settings")


def test_commits_do_not_wait_for_the_disk_but_the_log_stays_write_ahead(home):
    """synchronous=NORMAL (1) under WAL: a commit is not an fsync; a power cut may lose the last events, never the
    file's consistency (SQLite's guarantee for WAL)."""
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        for connection in (storage.index_connection(), storage.run_connection("some-run")):
            with connection as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_partition_seen_to_exist_is_not_asked_again_for_a_minute_and_one_deleted_here_is_gone_at_once(
        home, monkeypatch):
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    asked: list[str] = []
    real = SqlEventLogStorage.has_dynamic_partition
    monkeypatch.setattr(SqlEventLogStorage, "has_dynamic_partition",
                        lambda self, name, key: asked.append(key) or real(self, name, key))
    clock = [1000.0]
    monkeypatch.setattr(event_log.time, "monotonic", lambda: clock[0])
    with dg.DagsterInstance.get() as instance, _stock_instance(home) as other_process:
        instance.add_dynamic_partitions("county", ["360799", "360800"])
        assert [instance.has_dynamic_partition("county", "360799") for _ in range(3)] == [True] * 3
        assert [instance.has_dynamic_partition("county", "369999") for _ in range(2)] == [False] * 2
        assert asked == ["360799", "369999", "369999"]  # a missing one is asked every time
        other_process.delete_dynamic_partition("county", "360800")
        assert instance.has_dynamic_partition("county", "360800") is False  # never seen here: asked
        instance.delete_dynamic_partition("county", "360799")
        assert instance.has_dynamic_partition("county", "360799") is False
        instance.add_dynamic_partitions("county", ["360799"])
        assert instance.has_dynamic_partition("county", "360799") is True
        other_process.delete_dynamic_partition("county", "360799")
        assert instance.has_dynamic_partition("county", "360799") is True  # within the minute: taken as known
        clock[0] += event_log.KNOWN_PARTITION_SECONDS
        assert instance.has_dynamic_partition("county", "360799") is False


def test_the_index_tables_are_looked_up_once_not_for_every_check_or_materialization_event(home, monkeypatch):
    looked_up: list[str] = []
    real = event_log.SqliteEventLogStorage.has_table
    monkeypatch.setattr(event_log.SqliteEventLogStorage, "has_table",
                        lambda self, name: looked_up.append(name) or real(self, name))
    with dg.DagsterInstance.get() as instance:
        runs = [dg.materialize([tiny], instance=instance) for _ in range(3)]
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("tiny"), "has_rows"), limit=10)
    assert all(run.success for run in runs) and len(checks) == 3
    assert looked_up.count("asset_check_executions") == 1
    assert looked_up.count("asset_event_tags") == 1  # asked for each materialization's data-version tags
    assert len(looked_up) == len(set(looked_up))

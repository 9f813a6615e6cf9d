"""The progress lines of `fangpin run` (pipelines/progress.py) reach the person watching, whatever Dagster's log
capture does.

Dagster's in-process executor redirects the run's stdout and stderr into a compute-log file and echoes that file
back through a `tail -F` subprocess, terminated when the run ends. A line written shortly before the end (a failing
step's ✗ line, then the run is over) is lost whenever the tail had not read it yet: the crash-safety test of a locked
warehouse failed that way, under load, about once in seven suites. A `tail` that never echoes anything is that race
at its worst, made certain: the progress lines must still all be there. And the other way round: a terminal gone
away (its pipe closed) loses the lines, never the run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fangpin.config import PROJECT_ROOT

JOB = """
import dagster as dg
from pipelines.progress import progress_logger

@dg.op
def reads():
    return 1

@dg.op
def fails(value):
    if FAIL:
        raise dg.Failure(description="数据仓库被占用 held by PID 42")

@dg.job(logger_defs={"progress": progress_logger})
def job():
    fails(reads())

from fangpin.instance import dagster_home

dagster_home()  # the instance `fangpin run` uses: its compute logs are captured, its log set-up closes handlers
with dg.DagsterInstance.get() as instance:
    for run in range(RUNS):  # one process, many runs: `fangpin province` runs its counties so
        result = job.execute_in_process(instance=instance, run_config={"loggers": {"progress": {}}},
                                        raise_on_error=False)
        print("success" if result.success else "failed", flush=True)
"""
RUNS = 2


def _environment(tmp_path: Path, tail_script: str | None = None) -> dict[str, str]:
    """The child's environment: the project importable, its own instance, and `tail_script` as its `tail`."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "DAGSTER_HOME": str(tmp_path / "home")}
    if tail_script:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        tail = bin_dir / "tail"
        tail.write_text(f"#!/bin/sh\n{tail_script}\n")
        tail.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return env


def _job_command(fail: bool = True) -> list[str]:
    """The job above as a child's command line: RUNS runs, its second op failing or not."""
    return [sys.executable, "-c", f"RUNS = {RUNS}\nFAIL = {fail}\n{JOB}"]


def _run_with_tail(tmp_path: Path, tail_script: str) -> subprocess.CompletedProcess:
    """The job above in a child process whose `tail` is `tail_script` (first on PATH)."""
    return subprocess.run(_job_command(), env=_environment(tmp_path, tail_script), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_progress_lines_do_not_depend_on_dagsters_tail_of_the_captured_stderr(tmp_path):
    run = _run_with_tail(tmp_path, "exec sleep 600")  # echoes nothing, until Dagster terminates it
    assert run.stdout.split() == ["failed"] * RUNS, run.stderr[-2000:]
    assert run.stderr.count("▶ reads") == RUNS and run.stderr.count("▶ fails") == RUNS, run.stderr[-2000:]
    failures = [line for line in run.stderr.splitlines() if line.startswith("✗ fails:")]
    assert failures == ["✗ fails: 数据仓库被占用 held by PID 42"] * RUNS, run.stderr[-2000:]  # the clerk's words only


def test_progress_lines_are_written_once_when_the_tail_does_echo(tmp_path):
    """With the real tail the lines are not doubled: they go to the console, not through the capture as well."""
    run = _run_with_tail(tmp_path, 'exec /usr/bin/env -i PATH=/usr/bin:/bin tail "$@"')
    assert run.stderr.count("✗ fails:") == RUNS and run.stderr.count("▶ reads") == RUNS, run.stderr[-2000:]


def test_a_failure_line_shows_fangpins_own_message_without_its_class_and_a_library_error_with_it():
    from dagster._utils.error import SerializableErrorInfo

    from pipelines.progress import _root_cause

    def error(message: str, cls_name: str, cause=None) -> SerializableErrorInfo:
        return SerializableErrorInfo(message=message + "\n", stack=[], cls_name=cls_name, cause=cause)

    busy = error("fangpin.warehouse.WarehouseBusy: 数据仓库正被占用", "WarehouseBusy")
    wrapped = error("dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op",
                    "DagsterExecutionStepExecutionError", cause=busy)
    assert _root_cause(wrapped) == "数据仓库正被占用"
    assert _root_cause(error("ValueError: could not convert string to float: 'x'", "ValueError")) == (
        "ValueError: could not convert string to float: 'x'")


def test_a_skipped_step_names_each_upstream_step_once_in_words_a_clerk_reads():
    from pipelines.progress import skipped_step_message

    lists = ", ".join(["'department_lists'"] * 22)
    assert skipped_step_message(f"Dependencies for step warehouse_month failed: ['roster'] were not executed: "
                                f"[{lists}]. Not executing.") == (
        "未运行 not run（上游步骤未完成 upstream steps not done: roster、department_lists）")
    assert skipped_step_message("Dependencies for step person_links were not executed: ['warehouse_month']. "
                                "Not executing.") == "未运行 not run（上游步骤未完成 upstream steps not done: warehouse_month）"
    assert skipped_step_message("Dependencies for step roster_places failed: ['roster']. Not executing.") == (
        "未运行 not run（上游步骤未完成 upstream steps not done: roster）")
    assert skipped_step_message("22 个文件，22 张表，0 个文件问题") == "22 个文件，22 张表，0 个文件问题"


def test_a_terminal_gone_away_does_not_fail_the_run(tmp_path):
    """Progress lines are a courtesy (the event log has every event): stderr closed under the run (a pipe whose
    reader exited) must not fail its steps."""
    child = subprocess.Popen(_job_command(fail=False), env=_environment(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    child.stderr.close()  # the reader is gone: every write to stderr now fails (EPIPE)
    out, _ = child.communicate(timeout=120)
    assert out.split() == ["success"] * RUNS


def test_an_operating_system_error_names_its_path_and_what_to_do_in_chinese_then_pythons_words(tmp_path):
    import traceback

    from pipelines.progress import clerk_message

    blocker = tmp_path / "exports" / "2026-10"  # a file where the month's exports folder should be
    blocker.parent.mkdir()
    blocker.touch()
    try:
        blocker.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        text = traceback.format_exception_only(error)[-1].strip()  # Python's own words, as a step failure has them
    assert clerk_message(text) == f"{blocker}：已有同名的文件或文件夹，无法在此创建，请移走或改名后重新运行（{text}）"
    assert clerk_message("PermissionError: [Errno 13] Permission denied: '/d/x.xlsx'").startswith(
        "/d/x.xlsx：没有读写权限")
    assert clerk_message("OSError: [Errno 28] No space left on device") == (
        "磁盘已满，请清理磁盘空间后重新运行（OSError: [Errno 28] No space left on device）")
    unworded = "OSError: [Errno 18] Invalid cross-device link: '/a' -> '/b'"  # no words for it: as Python said it
    assert clerk_message(unworded) == unworded
    assert clerk_message("ValueError: [Errno 13] is not how this error looks") == (
        "ValueError: [Errno 13] is not how this error looks")



def test_an_operating_system_error_another_library_reports_gets_the_same_words_and_fangpins_own_stay_as_they_are():
    import errno
    import os

    from pipelines.progress import clerk_message

    full = ('_duckdb.IOException: IO Error: Could not write all bytes to file "/d/fangpin.duckdb.run": '
            + os.strerror(errno.ENOSPC))  # DuckDB's words, with the system's text at the end
    assert clerk_message(full) == f"磁盘已满，请清理磁盘空间后重新运行（{full}）"
    own = "fangpin.protect.SecretError: 工作簿密码文件 /s/p.yaml 不存在。 " + os.strerror(errno.ENOENT)
    assert clerk_message(own) == "工作簿密码文件 /s/p.yaml 不存在。 " + os.strerror(errno.ENOENT)


def test_an_interrupted_step_is_told_in_words_with_what_became_of_the_run():
    """After Ctrl-C the clerk read `✗ township_feedback: dagster._core.errors.DagsterExecutionInterruptedError`."""
    from pipelines.progress import INTERRUPTED_WORDS, clerk_message

    assert clerk_message("dagster._core.errors.DagsterExecutionInterruptedError") == INTERRUPTED_WORDS
    assert clerk_message("KeyboardInterrupt") == INTERRUPTED_WORDS
    assert clerk_message("RuntimeError: Query interrupted") == INTERRUPTED_WORDS  # Ctrl-C inside a DuckDB query
    assert "没有保存" in INTERRUPTED_WORDS
    assert clerk_message("ValueError: KeyboardInterrupt in a message") == "ValueError: KeyboardInterrupt in a message"

"""A Dagster logger that prints one short line per asset for the person watching `fangpin run`."""

import builtins
import errno
import logging
import os
import re
import sys
from typing import TextIO

import dagster as dg

from fangpin.files import OS_ERROR_WORDS
from pipelines.resources import is_interruption

INTERRUPTED_WORDS = ("运行被中断（Ctrl-C，或在界面中终止），本次运行的结果没有保存，数据仓库保持运行前的样子；需要时请重新运行 "
                     "(run interrupted: nothing of it was saved)")

_SHOWN_EVENTS = {"STEP_START", "STEP_FAILURE", "ASSET_CHECK_EVALUATION", "RUN_FAILURE"}
# Dagster's line for a step it skips: "Dependencies for step X failed: ['a'] were not executed: ['b', 'b']. Not
# executing." (either part may be missing), the names repeated once per input (22 for the department lists).
_SKIPPED_STEP = re.compile(r"^Dependencies for step \S+ (?:failed: \[(?P<failed>[^\]]*)\])?\s*"
                           r"(?:were not executed: \[(?P<skipped>[^\]]*)\])?\. Not executing\.$")
# The class in front of a message written for the clerk (fangpin's own errors, dg.Failure's description): dropped.
_CLERK_MESSAGE_CLASS = re.compile(r"^(?:fangpin\.[\w.]+|dagster\._core\.definitions\.events\.Failure): ")
# An operating-system error as Python words it: "PermissionError: [Errno 13] Permission denied: '/d/x.xlsx'"
# (a rename adds " -> 'target'").
_OS_ERROR = re.compile(r"^(?:" + "|".join(name for name, value in vars(builtins).items()
                                          if isinstance(value, type) and issubclass(value, OSError))
                       + r"): \[Errno (?P<code>\d+)\] [^:]+(?:: '(?P<path>[^']*)')?(?: -> '[^']*')?$")


def _root_cause(error) -> str:
    """The first error below Dagster's wrappers: fangpin's own message ('warehouse held by PID 123 ...'),
    not 'Error occurred while executing op' nor the library error fangpin wrapped (as `clerk_message` words it)."""
    while error is not None and (error.cls_name or "").startswith("Dagster") and (error.cause or error.context):
        error = error.cause or error.context
    return clerk_message(error.message) if error is not None else "unknown error"


def skipped_step_message(text: str) -> str:
    """Dagster's line for a step it skips as the clerk reads it: each upstream step named once, the failed ones
    first; any other text as it is."""
    found = _SKIPPED_STEP.match(text.strip())
    if found is None:
        return text
    upstream = [name.strip().strip("'\"") for part in ("failed", "skipped") for name in (found[part] or "").split(",")]
    named = "、".join(dict.fromkeys(name for name in upstream if name))
    return f"未运行 not run（上游步骤未完成 upstream steps not done: {named}）"


def clerk_message(text: str) -> str:
    """An error's text ('fangpin.warehouse.WarehouseBusy: 数据仓库…') as the clerk reads it: fangpin's own message
    without the Python class in front; an operating-system error (no permission, disk full, a file where a folder
    should be) as its path, what to do in Chinese, then Python's words, or, reported by another library (DuckDB),
    what to do and then its words; any other library error keeps its class (it says what broke)."""
    text = text.strip()
    if is_interruption(text.split(":", 1)[0].rsplit(".", 1)[-1], text):
        return INTERRUPTED_WORDS
    if _CLERK_MESSAGE_CLASS.match(text):  # fangpin's own words: already what the clerk should read
        return _CLERK_MESSAGE_CLASS.sub("", text)
    found = _OS_ERROR.match(text)
    words = OS_ERROR_WORDS.get(errno.errorcode.get(int(found["code"]), "")) if found else None
    if words is not None:
        return f"{found['path']}：{words}（{text}）" if found["path"] else f"{words}（{text}）"
    words = _library_os_error_words(text)
    return f"{words}（{text}）" if words else text


def _library_os_error_words(text: str) -> str | None:
    """The Chinese words for an operating-system error another library reports in its own words with the system's
    text in them (DuckDB: 'IO Error: Could not write all bytes to file "…": No space left on device'); None if none."""
    for name, words in OS_ERROR_WORDS.items():
        code = getattr(errno, name, None)  # EDQUOT is not on every system
        if code is not None and os.strerror(code) in text:
            return words
    return None


_terminal: TextIO | None = None  # the copy of stderr the progress lines go to (see _take_terminal); None: stderr


def _take_terminal() -> None:
    """Point the progress lines at a copy of the process's stderr as it is now, before the run redirects it.

    Dagster's in-process executor redirects the run's stdout and stderr into its compute-log file and echoes that
    file back through a `tail -F` subprocess, which it terminates when the run ends (dagster-io/dagster#23336): a
    line written shortly before the end, a failing step's ✗ line, is lost whenever the tail had not read it yet (a
    test saw it twice in ~13 suites, under load). Written to a copy of stderr taken when the run sets up its
    loggers, the lines arrive at once, in order, and none is lost; the run's event log has every event they show.

    The copy is the module's, not the handler's: Dagster's log set-up closes every logging handler after the
    loggers are made (`logging.config.dictConfig` on the instance's python_logs settings), so a handler owning its
    stream would find it closed. Each run takes a new copy and closes the last run's (a process may run many: a
    province's counties); stderr itself when it has no file descriptor (a test's).
    """
    global _terminal
    try:
        copy = os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding=sys.stderr.encoding or "utf-8",
                         errors="backslashreplace", buffering=1)
    except (AttributeError, OSError, ValueError):
        copy = None
    previous, _terminal = _terminal, copy
    if previous is not None:
        try:
            previous.close()
        except OSError:  # its terminal is gone (a closed pipe): lines it could not write are lost, nothing else
            pass


def _say(line: str) -> None:
    print(line, file=_terminal or sys.stderr, flush=True)


def _step_line(step: str, message: str) -> None:
    """A step's message as the person watching reads it: `  roster: 花名册 …` (a county's steps in the province's one
    run: `  360099 roster: …`)."""
    _say(f"  {step}: {message}")


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        """The record's progress line, if it has one. A line that cannot be written (the terminal gone: a closed
        pipe) is logging's usual handled error, never the run's: the event log has every event anyway."""
        try:
            self._show(record)
        except Exception:  # noqa: BLE001 - logging's contract: a handler's failure must not reach the caller
            self.handleError(record)

    def _show(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        message = meta.get("orig_message") or record.getMessage()
        if event is None:
            if record.levelno >= logging.INFO:
                _step_line(step, skipped_step_message(message))
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            _say(f"▶ {step}")
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                asset = evaluation.asset_key.to_user_string()
                _say(f"  ✗ 检查未通过 check failed: {asset} · {evaluation.check_name}")
        elif kind == "STEP_FAILURE":
            _say(f"✗ {step}: {_root_cause(event.event_specific_data.error)}")
        elif kind in _SHOWN_EVENTS:
            _say(f"✗ {step or 'run'}: {message}")


class AssetLines(logging.Filter):
    """The progress lines of directly invoked assets (the province's one run, `fangpin province --one-run`), as
    `fangpin run` prints a step's: `  360099 roster: 花名册 300000 行…` for a county, `  province_risk: …` for the
    provincial marts. Put on the log of the assets' context, it prints each message with the county, if any, and the
    asset running (`step`, set by the caller), and keeps it from Dagster's console, which would print it with a
    timestamp and no county, two workers' lines interleaved. One write per line, so the two workers' lines never
    mix within a line."""

    def __init__(self, step: str = "", county: str | None = None):
        super().__init__()
        self.step, self.prefix = step, f"{county} " if county else ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            _step_line(f"{self.prefix}{self.step}", record.getMessage())
        return False


@dg.logger(description="Short progress lines, one per asset (used by `fangpin run`).")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("fangpin.progress")
    log.setLevel(logging.DEBUG)
    _take_terminal()
    log.handlers = [_ProgressHandler()]
    log.propagate = False
    return log

"""A Dagster logger that prints one short line per asset for the person watching `fangpin run`."""

import logging
import sys

import dagster as dg

_SHOWN_EVENTS = {"STEP_START", "STEP_FAILURE", "ASSET_CHECK_EVALUATION", "RUN_FAILURE"}


def _root_cause(error) -> str:
    """The first error below Dagster's wrappers: fangpin's own message ('warehouse held by PID 123 ...'),
    not 'Error occurred while executing op' nor the library error fangpin wrapped."""
    while error is not None and (error.cls_name or "").startswith("Dagster") and (error.cause or error.context):
        error = error.cause or error.context
    return error.message.strip() if error is not None else "unknown error"


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        message = meta.get("orig_message") or record.getMessage()
        if event is None:
            if record.levelno >= logging.INFO:
                print(f"  {step}: {message}", file=sys.stderr, flush=True)
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            print(f"▶ {step}", file=sys.stderr, flush=True)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                asset = evaluation.asset_key.to_user_string()
                print(f"  ✗ 检查未通过 check failed: {asset} · {evaluation.check_name}", file=sys.stderr, flush=True)
        elif kind == "STEP_FAILURE":
            print(f"✗ {step}: {_root_cause(event.event_specific_data.error)}", file=sys.stderr, flush=True)
        elif kind in _SHOWN_EVENTS:
            print(f"✗ {step or 'run'}: {message}", file=sys.stderr, flush=True)


@dg.logger(description="Short progress lines, one per asset (used by `fangpin run`).")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("fangpin.progress")
    log.setLevel(logging.DEBUG)
    log.handlers = [_ProgressHandler()]
    log.propagate = False
    return log

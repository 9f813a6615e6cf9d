"""Work started in a daemon thread, its result collected later by the step that needs it; and the roster's read,
which a run can have started before Dagster is even imported.

Why start the roster's read that early: a county run's first ~2 s are Dagster, the code location and the instance
being imported, single-threaded Python, while the other core idles; calamine parses outside the GIL, so the
roster's files (most of the month's bytes) can be parsed meanwhile. The CLI starts the read (`read_roster_ahead`)
before it imports Dagster; the run's resource takes that read over (`roster_read`) instead of starting its own.
Same function, same files, same tables: only sooner.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, TypeVar

from fangpin import framestack

T = TypeVar("T")

ROSTER_READ_THREAD = "fangpin-roster-read"
_ahead: dict[tuple[str, str], Future] = {}  # (data dir, month) -> a roster read started before its run
_AHEAD_LOCK = threading.Lock()


def in_background(name: str, work: Callable[[], T]) -> Future:
    """`work()` in a daemon thread named `name`; its result, or its error, in the returned future (raised again in
    the step that asks for it, where the run reports it). A daemon, so a run that fails before the step that needs
    it does not wait at exit."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(framestack.with_room(work))  # deep calls (the GE suites): see fangpin.framestack
        except BaseException as error:  # noqa: BLE001 - handed to the step through the future
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _read(data_dir: Path, month: str) -> Future:
    from fangpin import reading

    return in_background(ROSTER_READ_THREAD, lambda: reading.read_roster(data_dir, month))


def read_roster_ahead(data_dir: Path, month: str) -> None:
    """Start reading `month`'s roster files under `data_dir` now, for a run of that month about to start in this
    process (`roster_read` hands it over). Unclaimed, it is a daemon thread's wasted work, nothing more."""
    data_dir = Path(data_dir).resolve()
    with _AHEAD_LOCK:
        if (str(data_dir), month) not in _ahead:
            _ahead[(str(data_dir), month)] = _read(data_dir, month)


def roster_read(data_dir: Path, month: str, then: Callable[[], object] | None = None) -> Future:
    """`reading.read_roster(data_dir, month)` in a background thread, its result to come in the returned future:
    the read `read_roster_ahead` started, taken over (once), else one started now. `then` is called once the read
    is over (succeeded or failed): in the reading thread, or at once when it is already over."""
    data_dir = Path(data_dir).resolve()
    with _AHEAD_LOCK:
        future = _ahead.pop((str(data_dir), month), None)
    if future is None:
        future = _read(data_dir, month)
    if then is not None:
        future.add_done_callback(lambda _: then())
    return future

"""Python's garbage collector around the loading of large libraries.

Dagster, great-expectations, pandas and their dependencies leave ~500,000 objects that live as long as the process.
Python 3.11 runs a full collection each time the objects that survived younger collections grow by a quarter, and a
full collection walks every one of them: while the modules load (each import adds a quarter, and is walked again)
and then through the run, every ~0.2-0.3 s of the collector's time blocking every Python thread. In a county run
the full collections took ~0.8 s of CPU, ~0.3 s of it before the first step (bench/FINDINGS.md, session 17).

`loading_modules()` wraps such imports: no full collection while they run, and if they loaded any module, every
object alive then moves to the collector's permanent generation (`gc.freeze`), which later collections do not walk.
What gets frozen is mostly what the modules made, which stays anyway; the young collections go on as usual, so
cycles made later are still freed. A block that loads nothing (the modules were already there: the next county of
a province run in the same process) freezes nothing, so the garbage of earlier work is not kept forever.
"""
from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_NEVER = 2**31 - 1  # a full-collection threshold no count reaches
_STATE = threading.Lock()
_loading = 0  # how many `loading_modules()` blocks are open, in any thread
_thresholds: tuple[int, int, int] | None = None  # the thresholds the first open block found, restored by the last


@contextmanager
def loading_modules() -> Iterator[None]:
    """No full collection inside the block; afterwards, if it loaded a module, everything alive is frozen out of
    later collections.

    Blocks may nest or overlap across threads: the thresholds come back when the last open block closes.
    """
    global _loading, _thresholds
    modules_before = len(sys.modules)
    with _STATE:
        if _loading == 0:
            _thresholds = gc.get_threshold()
            gc.set_threshold(_thresholds[0], _thresholds[1], _NEVER)
        _loading += 1
    try:
        yield
    finally:
        with _STATE:
            _loading -= 1
            if len(sys.modules) > modules_before:
                gc.freeze()
            if _loading == 0:
                gc.set_threshold(*_thresholds)

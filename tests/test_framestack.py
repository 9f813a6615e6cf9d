"""fangpin.framestack: a call chain hovering at the edge of CPython's 16 KB frame-stack chunks maps and unmaps a
chunk on every crossing; `with_room` keeps it inside one large chunk. Counted as the thread's minor page faults: a
fresh chunk is fresh memory, faulted in on first use."""
from __future__ import annotations

import resource
import sys
import threading

import pytest

from fangpin.framestack import with_room

pytestmark = pytest.mark.skipif(sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11)
                                or not hasattr(resource, "RUSAGE_THREAD"),
                                reason="CPython 3.11's frame-stack chunks, counted with Linux's per-thread rusage")


def _leaf() -> int:
    """A frame larger than `_down`'s (40 locals), so the last `_down` frame that fits in a chunk leaves too little
    room for it: its calls from there always cross the edge."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = b9 = 0
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = d8 = d9 = 0
    return 1


def _down(depth: int, calls: int) -> int:
    """At every depth, `calls` calls one frame deeper: at the last depth a chunk holds, each one crosses its edge."""
    if depth == 0:
        return 0
    for _ in range(calls):
        _leaf()
    return _down(depth - 1, calls)


def _page_faults_in_a_fresh_thread(work) -> int:
    counted = {}

    def run() -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        work()
        counted["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return counted["faults"]


def test_a_deep_call_chain_crossing_a_chunk_edge_maps_a_chunk_per_call_without_room():
    # 400 frames span more than one 16 KB chunk, so some depth sits at an edge and its 200 calls each map a chunk
    assert _page_faults_in_a_fresh_thread(lambda: _down(400, 200)) >= 150


def test_with_room_keeps_the_chain_in_one_chunk():
    assert _page_faults_in_a_fresh_thread(lambda: with_room(lambda: _down(400, 200))) < 60


def test_with_room_returns_what_the_work_returns_and_raises_what_it_raises():
    assert with_room(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        with_room(lambda: 1 / 0)

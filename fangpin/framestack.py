"""Room on Python's frame stack, so that deep call chains do not map and unmap memory on every call.

CPython 3.11 keeps a thread's Python frames in chunks of 16 KB. A call that does not fit in the current chunk gets a
new chunk from the operating system (mmap), and returning from it gives the chunk back (munmap). A call chain that
keeps crossing a chunk's edge pays both system calls on every crossing, plus a TLB flush on the other cores while the
process's other threads run there. Importing great-expectations (hundreds of nested imports, class bodies, pydantic
models) crosses one thousands of times: in the bench county's run, perf found 0.5 of the import thread's 1.7 CPU-s
in munmap (bench/FINDINGS.md, session 20).

`with_room(work)` runs `work()` above one frame large enough to get a chunk of 1 MB (a frame with a large value stack,
which nothing uses), so the frames of `work` stay inside that chunk: one mmap for the whole call. It changes nothing
but where the frames live; on another Python it is a plain call.
"""
from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")

# Value-stack slots of the holding frame: 70,000 x 8 bytes = 560 KB, so CPython allocates a 1 MB chunk for it and the
# frames called from it have ~460 KB above it (thousands of frames) before the next chunk.
_HOLDING_SLOTS = 70_000


def _call(work: Callable[[], T]) -> T:
    return work()


_call_on_a_large_chunk = type(_call)(_call.__code__.replace(co_stacksize=_HOLDING_SLOTS), globals(), "_call")


def with_room(work: Callable[[], T]) -> T:
    """`work()`, its frames kept in one 1 MB chunk of the thread's frame stack (see the module docstring)."""
    return _call_on_a_large_chunk(work)

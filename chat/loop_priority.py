"""Run what a new turn waits on ahead of the relay's queued work.

Under load the event loop's ready queue holds every running stream's reads, renders and frame
writes. Something scheduled now (a new task's first step, a task woken by its data) runs after
all of them: on average half a pass of the loop later, a few tenths of a millisecond at 100
streams, and a new turn's first token waits through several such hand-offs (the browser's
message reaching its consumer, the runner's first step, the gateway's first bytes reaching
the runner). ``ahead_of_queued_work`` puts what a block schedules at the front instead. Used
only for those few hand-offs per turn, so the streams' own order is unchanged.

asyncio keeps the ready queue as ``loop._ready`` (a deque of handles) in every version; on a
loop without one (uvloop, a test's stand-in) the block just runs, and what it scheduled keeps
its place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator

__all__ = ["ahead_of_queued_work"]


@contextlib.contextmanager
def ahead_of_queued_work(loop: asyncio.AbstractEventLoop | None = None) -> Iterator[None]:
    """What the block schedules with ``call_soon`` (a task created, a future's result set)
    runs before the callbacks already waiting, in the order it was scheduled."""
    ready = getattr(loop or asyncio.get_running_loop(), "_ready", None)
    if type(ready) is not collections.deque:
        yield
        return
    before = len(ready)
    try:
        yield
    finally:
        scheduled = [ready.pop() for _ in range(len(ready) - before)]  # newest first
        ready.extendleft(scheduled)  # adds each at the front: oldest ends up first

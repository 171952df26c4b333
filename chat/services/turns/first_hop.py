"""The database-thread hop that plans a new turn, with the event loop waiting for it.

Under load the planning hop was the largest part of the first token's wait: the event loop
(every running stream's reads, renders and frames) and the database thread share one GIL, so
5 ms of planning took 15 to 25 ms at 100 streams, switching every ``GIL_SWITCH_INTERVAL_MS``. While
a turn is planned the loop now blocks on it (the GIL is free for the plan), for at most
``TURN_START_PRIORITY_MS`` per hop and at most a tenth of the loop's time overall (a burst of
new turns then waits as before): the running streams' next deltas are a few ms later, once
per new turn, and the new turn's first token is that much sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

from chat.upstream import eager

T = TypeVar("T")

# The loop blocks for plans at most this share of the time, in bursts of at most a second's.
SHARE = 0.1


class _Budget:
    """A token bucket of loop time that waiting for plans may use."""

    def __init__(self) -> None:
        self.left = SHARE
        self.at = time.monotonic()

    def available(self) -> float:
        now = time.monotonic()
        self.left = min(SHARE, self.left + (now - self.at) * SHARE)
        self.at = now
        return self.left

    def spend(self, seconds: float) -> None:
        self.left -= seconds


_budget = _Budget()


async def run(func: Callable[[], T]) -> T:
    """``await database_sync_to_async(func)()``, with the loop waiting for it first."""
    finished = threading.Event()
    outcome: list[tuple[T | None, BaseException | None]] = []

    def hop() -> T:
        try:
            value = func()
        except BaseException as error:
            outcome.append((None, error))
            raise
        else:
            outcome.append((value, None))
            return value
        finally:
            finished.set()

    # In the database thread's queue now. In a context of its own: asgiref marks the context
    # of a pending hop (no other hop may start from it), and the caller may go on before the
    # hop's coroutine ends.
    context = contextvars.copy_context()
    started = context.run(eager.start, database_sync_to_async(hop)())
    limit = min(settings.TURN_START_PRIORITY_MS / 1000, _budget.available())
    if not started.done and limit > 0:
        began = time.monotonic()
        finished.wait(limit)
        _budget.spend(time.monotonic() - began)
    if not finished.is_set():
        return await started
    # The caller goes on now: the hand-back through the loop (a callback, then the task's
    # wake-up behind every read that arrived while the loop waited) is finished aside.
    _finish_aside(started, context)
    value, error = outcome[0]
    if error is not None:
        raise error
    return value  # type: ignore[return-value]


_aside: set[asyncio.Task] = set()  # strong references until they end


def _finish_aside(started: eager.Started, context: contextvars.Context) -> None:
    async def finish() -> None:
        with contextlib.suppress(BaseException):  # its outcome was already taken
            await started

    task = asyncio.get_running_loop().create_task(finish(), context=context)
    _aside.add(task)
    task.add_done_callback(_aside.discard)

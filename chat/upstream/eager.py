"""Run an awaitable up to its first real wait, now, without a task switch (what Python 3.12's
eager tasks do, for 3.11 and without a task).

Why: the relay reads the gateway once per coalescing window; a read of data already buffered
completes at once, and those reads join the current batch. Only the first read that would
wait is left :class:`Started`, and the one who awaits it later finishes it — until then no one
is woken when its data arrives (the data waits in the socket buffer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Started", "start"]

T = TypeVar("T")


class Started(Generic[T]):
    """An awaitable already run up to its first wait, or to its end (``done``). Await it once:
    it finishes it in the awaiting task (or returns or raises its outcome), like the original
    awaitable would have. :meth:`abandon` instead ends one that is still waiting."""

    __slots__ = ("_error", "_steps", "_value", "_waiting", "done")

    def __init__(self, awaitable: Awaitable[T]) -> None:
        self._steps = awaitable.__await__()
        self._value: Any = None
        self._error: BaseException | None = None
        self._waiting: Any = None
        self.done = False
        try:
            self._waiting = self._steps.send(None)
        except StopIteration as end:
            self.done, self._value = True, end.value
        except BaseException as exc:  # kept for the awaiting task, as an awaitable would
            self.done, self._error = True, exc

    @property
    def succeeded(self) -> bool:
        return self.done and self._error is None

    def result(self) -> T:
        """The outcome of a :attr:`done` one: its value, or its exception raised."""
        if self._error is not None:
            raise self._error
        return self._value

    def __await__(self) -> Generator[Any, Any, T]:
        if self.done:
            return self.result()
        waiting = self._waiting
        while True:
            try:
                sent = yield waiting  # the task waits on the same future the read gave us
            except BaseException as exc:  # cancelled or timed out: delivered into the read
                try:
                    waiting = self._steps.throw(exc)
                except StopIteration as end:
                    return end.value
            else:
                try:
                    waiting = self._steps.send(sent)
                except StopIteration as end:
                    return end.value

    async def abandon(self) -> None:
        """End a started one that is still waiting: cancelled inside (so its clean-up runs, in
        this task); whatever it ends with is dropped. A cancellation of the task itself
        meanwhile still propagates."""
        if self.done:
            return
        self.done = True
        reason = asyncio.CancelledError()
        try:
            self._waiting = self._steps.throw(reason)
        except BaseException:  # ended, as it should: this read is thrown away
            return
        self.done = False  # its clean-up waits for something (a lock): let it finish
        try:
            await self
        except asyncio.CancelledError as ended:
            if ended is not reason:  # the task itself was cancelled meanwhile
                raise
        except Exception:  # the read is thrown away, and its failure with it
            pass


def start(awaitable: Awaitable[T]) -> Started[T]:
    return Started(awaitable)

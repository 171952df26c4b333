"""How many turns stream at once in this process, and the line of those waiting for a place.

One Daphne process is one core: past a number of concurrent answers every stream slows down
together (each delta waits behind all the others' work) until some fail. So at most
``MAX_RUNNING_TURNS`` turns consume their upstream at once; the next ones wait in line, in the
order they were sent, each showing its place ("Waiting — 3 ahead") and starting when a place
frees. With ``MAX_QUEUED_TURNS`` waiting already, a new message is refused with a clear
reason before any turn is created.

A waiting turn's runner is already running (its own task): it writes heartbeats (no reaper
takes it for dead) and listens on its channel, so Stop from any worker leaves the line at once
(the task is cancelled while it waits). ``0`` as the limit turns the line off.

Places are shown by one coalescing task, not by each admission: with a thousand turns waiting,
every admission moves all of them, and one message each per admission would cost the saturated
process more than the answers it serves. A pass at once, then at most one every
``POSITION_UPDATE_SECONDS``, shows a turn's new place when it moved by at least a tenth (always
for the first ten in line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chat import live
from chat.channel_layer import ChannelLayerUnavailable
from chat.services import refusals

log = logging.getLogger(__name__)

POSITION_UPDATE_SECONDS = 1.0


@dataclass
class _Waiter:
    thread_id: int
    admitted: asyncio.Future[None]
    # Set once the thread's sockets have the turn: its place can only be shown after that.
    announced: asyncio.Event
    shown: int | None = None  # the place its viewers see


@dataclass
class Admission:
    """The running count and the line of one process (one event loop at a time)."""

    running: set[int] = field(default_factory=set)
    waiting: dict[int, _Waiter] = field(default_factory=dict)  # in arrival order
    _publisher: asyncio.Task[None] | None = None

    @staticmethod
    def limit() -> int:
        return settings.MAX_RUNNING_TURNS

    def has_room(self) -> bool:
        limit = self.limit()
        return limit <= 0 or (len(self.running) < limit and not self.waiting)

    def refuse_when_full(self) -> None:
        """Before a turn is created: refuse it when the line is full (nothing is written)."""
        if self.has_room() or len(self.waiting) < settings.MAX_QUEUED_TURNS:
            return
        raise refusals.TurnRejected(
            _(
                "The server is busy: %(count)d answers are already waiting. "
                "Nothing was sent; try again in a minute."
            )
            % {"count": len(self.waiting)}
        )

    def position(self, turn_id: int) -> int | None:
        """How many turns wait ahead of this one (None: it is not waiting)."""
        for ahead, waiting_id in enumerate(self.waiting):
            if waiting_id == turn_id:
                return ahead
        return None

    @contextlib.asynccontextmanager
    async def slot(
        self, turn_id: int, thread_id: int, announced: asyncio.Event
    ) -> AsyncIterator[None]:
        """Hold a place while the turn streams; wait in line for one first when all are taken."""
        if not self.has_room():
            await self._wait(turn_id, thread_id, announced)
        self.running.add(turn_id)
        try:
            yield
        finally:
            self.running.discard(turn_id)
            self._admit_next()

    async def _wait(self, turn_id: int, thread_id: int, announced: asyncio.Event) -> None:
        waiter = _Waiter(thread_id, asyncio.get_running_loop().create_future(), announced)
        self.waiting[turn_id] = waiter
        try:
            await waiter.announced.wait()
            ahead = self.position(turn_id)
            if ahead is not None:  # not admitted meanwhile: its viewers see its place at once
                await self._show_position(turn_id, waiter, ahead)
            await waiter.admitted
        except BaseException:  # stopped (or the server shut down) while waiting: leave the line
            if self.waiting.pop(turn_id, None) is not None:
                self._positions_changed()
            elif turn_id in self.running:  # admitted just before the stop: give the place on
                self.running.discard(turn_id)
                self._admit_next()
            raise

    def _admit_next(self) -> None:
        limit = self.limit()
        moved = False
        while self.waiting and (limit <= 0 or len(self.running) < limit):
            turn_id, waiter = next(iter(self.waiting.items()))
            del self.waiting[turn_id]
            # Counted now, not when its task resumes: a release meanwhile must not admit two.
            self.running.add(turn_id)
            waiter.admitted.set_result(None)
            moved = True
        if moved:
            self._positions_changed()

    def _positions_changed(self) -> None:
        """Show the new places soon, in one pass for however many admissions happen meanwhile
        (never awaited: a finishing turn does not wait for other turns' viewers)."""
        loop = asyncio.get_running_loop()
        publisher = self._publisher
        if publisher is None or publisher.done() or publisher.get_loop() is not loop:
            self._publisher = loop.create_task(self._publish_positions())

    async def _publish_positions(self) -> None:
        await asyncio.sleep(0)  # the admissions of this moment, in one pass
        while True:
            moved = [
                (turn_id, waiter, ahead)
                for ahead, (turn_id, waiter) in enumerate(self.waiting.items())
                if waiter.announced.is_set() and _worth_showing(waiter.shown, ahead)
            ]
            if not moved:
                return
            for turn_id, waiter, ahead in moved:
                await self._show_position(turn_id, waiter, ahead)
            await asyncio.sleep(POSITION_UPDATE_SECONDS)

    async def _show_position(self, turn_id: int, waiter: _Waiter, ahead: int) -> None:
        if turn_id not in self.waiting:  # admitted (or stopped) meanwhile: its answer shows
            return
        waiter.shown = ahead
        try:
            await live.publish(waiter.thread_id, waiting_message(turn_id, ahead))
        except ChannelLayerUnavailable:  # the turn still waits and starts in order
            log.warning("could not show the place in line of turn %s", turn_id)


def _worth_showing(shown: int | None, ahead: int) -> bool:
    """Exact places near the front; further back, a move by a tenth (300 → 270)."""
    if shown is None:
        return False  # its first place is shown by its own task once it is announced
    return shown != ahead and (ahead < 10 or shown - ahead >= max(1, shown // 10))


def waiting_text(ahead: int) -> str:
    if ahead == 0:
        return _("Waiting — next in line")
    return ngettext("Waiting — %(count)d ahead", "Waiting — %(count)d ahead", ahead) % {
        "count": ahead
    }


def waiting_message(turn_id: int, ahead: int) -> live.TurnWaiting:
    """The turn's open tail shows its place; the answer's first delta replaces it."""
    html = (
        f'<div id="turn-{turn_id}-tail" hx-swap-oob="innerHTML">'
        f'<p class="turn-waiting" role="status">{escape(waiting_text(ahead))}</p></div>'
    )
    return live.TurnWaiting(type="turn.waiting", turn_id=turn_id, ahead=ahead, html=html)


# This process's admission (the registry's turns are this process's too).
process_admission = Admission()


def waiting_message_for(turn_id: int) -> live.TurnWaiting | None:
    """The place in line of a turn waiting in this process (for a socket that just opened)."""
    ahead = process_admission.position(turn_id)
    return None if ahead is None else waiting_message(turn_id, ahead)


def refuse_when_full() -> None:
    """Raises ``TurnRejected`` when this process's line is full (before planning a turn)."""
    process_admission.refuse_when_full()


async def run_admitted(
    turn_id: int, thread_id: int, announced: asyncio.Event, consume: Callable[[], Awaitable[None]]
) -> None:
    """``consume()`` once this turn has a place (the runner's hook)."""
    async with process_admission.slot(turn_id, thread_id, announced):
        await consume()

"""The turns running in this process, and what reaches them or replaces them from anywhere:
stop and snapshot requests (to the runner's channel, on whichever worker), draining at
shutdown (``chat.shutdown``), and the reaper that closes turns whose worker died."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from chat import live
from chat.models import Turn
from chat.services import refusals
from chat.services.turns import store

if TYPE_CHECKING:
    from chat.services.turns.runner import TurnRunner

log = logging.getLogger(__name__)

# Turns running in this process, by id. Holding the runner also keeps its task alive.
_running: dict[int, TurnRunner] = {}

# False once this process is shutting down (``chat.shutdown``): new turns go to other workers.
accepting_turns = True


def refuse_while_shutting_down() -> None:
    if not accepting_turns:
        raise refusals.TurnRejected(_("This server is restarting. Send again in a moment."))


def add(runner: TurnRunner) -> None:
    _running[runner.turn_id] = runner


def forget(turn_id: int) -> None:
    _running.pop(turn_id, None)


def running_ids() -> list[int]:
    return list(_running)


def cancel_running(turn_id: int) -> bool:
    """Stop a turn generating in this process; its partial answer is kept, marked stopped."""
    runner = _running.get(turn_id)
    if runner is None:
        return False
    runner.stop()
    return True


def running_snapshot(turn_id: int) -> live.Snapshot | None:
    """The live state of a turn running in this process (None when it runs elsewhere)."""
    runner = _running.get(turn_id)
    return runner.snapshot() if runner else None


def running_snapshots() -> dict[int, live.Snapshot]:
    """Snapshots of every turn running in this process, by turn id."""
    return {turn_id: runner.snapshot() for turn_id, runner in list(_running.items())}


async def wait_for(turn_id: int) -> None:
    """Wait until a turn running in this process has finished (or paused) and been stored."""
    runner = _running.get(turn_id)
    if runner is not None and runner.task is not None:
        await asyncio.shield(runner.task)


async def publish_update(turn_id: int, *, finished: bool = False) -> None:
    """Tell the turn's sockets to show it as it is now (``finished``: as it ended)."""
    thread_id = await database_sync_to_async(Turn.objects.values_list("thread_id", flat=True).get)(
        pk=turn_id
    )
    if finished:
        await live.publish(thread_id, live.TurnFinished(type="turn.finished", turn_id=turn_id))
    else:
        await live.publish(thread_id, live.TurnUpdated(type="turn.updated", turn_id=turn_id))


# -- on whichever worker ---------------------------------------------------------------------------


async def stop_turn(turn_id: int) -> bool:
    """Stop a turn that is generating (on whichever worker) or waiting for a tool answer."""
    if cancel_running(turn_id):
        return True
    turn = await Turn.objects.filter(pk=turn_id).values("status", "runner_channel").afirst()
    if turn is None:
        return False
    if turn["status"] == Turn.Status.IN_PROGRESS and turn["runner_channel"]:
        await live.send(turn["runner_channel"], live.TurnStop(type="turn.stop"))
        return True
    # A turn paused for a tool answer has no runner: stopping it just ends it.
    stopped = await Turn.objects.filter(pk=turn_id, status=Turn.Status.AWAITING_TOOL).aupdate(
        status=Turn.Status.CANCELLED, finished_at=timezone.now()
    )
    if stopped:
        await publish_update(turn_id, finished=True)
    return bool(stopped)


async def request_snapshot(turn_id: int, reply_to: str) -> bool:
    """Ask the runner of a turn on another worker to send its live state to ``reply_to`` (as a
    ``turn.snapshot`` message). False when no runner is known for it."""
    channel = await (
        Turn.objects.filter(pk=turn_id, status=Turn.Status.IN_PROGRESS)
        .values_list("runner_channel", flat=True)
        .afirst()
    )
    if not channel:
        return False
    await live.send(channel, live.SnapshotRequest(type="snapshot.request", reply_to=reply_to))
    return True


def stop_runners_of_deleted_thread(thread_id: int) -> None:
    """Inside the transaction deleting a thread (its ``pre_delete`` signal, whatever the entry
    point): lock its unfinished turns, so that a runner storing its end meanwhile either
    finishes first or waits and then records its usage unlinked, never failing on a deleted
    row; once the deletion is committed, tell their runners to stop, on whichever worker."""
    channels = [
        channel
        for channel in Turn.objects.select_for_update()
        .filter(thread_id=thread_id, status__in=[*Turn.ACTIVE, Turn.Status.INTERRUPTED])
        .values_list("runner_channel", flat=True)
        if channel
    ]
    if channels:
        transaction.on_commit(lambda: _send_stop(channels))


def _send_stop(channels: list[str]) -> None:
    send = async_to_sync(live.send)
    for channel in channels:
        try:
            send(channel, live.TurnStop(type="turn.stop"))
        except Exception:  # the deletion stands; the runner's next checkpoint stops it
            log.exception("could not tell runner %s to stop", channel)


# -- shutdown ------------------------------------------------------------------------------------


async def finish_running_turns(*, grace: float, store_within: float) -> tuple[int, int]:
    """Shutting down: let this process's turns run for up to ``grace`` seconds, then interrupt
    the rest (stored with their text, "the server restarted"), waiting up to ``store_within``
    seconds for that. Returns (finished, interrupted)."""
    loop = asyncio.get_running_loop()
    # Only tasks of this loop: the registry may still name runners of a loop that has ended
    # (a test's), which cannot be awaited from here.
    runners = {
        runner.task: runner
        for runner in list(_running.values())
        if runner.task and runner.task.get_loop() is loop and not runner.task.done()
    }
    if not runners:
        return 0, 0
    _, left = await asyncio.wait(runners, timeout=grace)
    interrupted = 0
    for task in left:
        # Only those still generating: one already storing its end must not be cut short.
        if runners[task].state.status == Turn.Status.IN_PROGRESS:
            task.cancel()  # not ``stop()``: interrupted, not cancelled by a user
            interrupted += 1
    if left:
        await asyncio.wait(left, timeout=store_within)
    return len(runners) - interrupted, interrupted


# -- the reaper ----------------------------------------------------------------------------------


def mark_interrupted_turns(*, older_than: float | None = None) -> list[tuple[int, int]]:
    """Turns whose runner stopped saying it is alive (its worker died or restarted) keep their
    text, marked interrupted, and their usage is recorded (each exactly once, whichever worker
    closes it). Returns their (turn id, thread id).

    Nothing is closed while this process has recently failed to reach the database: runners
    could not write their heartbeats then, and one may still be retrying its final write. (The
    look itself still runs meanwhile: while the outage lasts it fails, which is noted.)"""
    stale = settings.TURN_STALE_SECONDS if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=stale)
    is_stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    dead = list(
        Turn.objects.filter(is_stale, status=Turn.Status.IN_PROGRESS)
        .exclude(pk__in=list(_running))
        .values_list("pk", "thread_id")
    )
    if not dead or not store.heartbeats_are_trustworthy():
        return []
    store.restore_mirrored_text([pk for pk, _ in dead])
    return [(pk, thread_id) for pk, thread_id in dead if store.close_dead_turn(pk, is_stale)]


async def reap_stale_turns() -> int:
    """Mark dead workers' turns interrupted and show it to everyone viewing them."""
    found = await database_sync_to_async(mark_interrupted_turns)()
    for turn_id, thread_id in found:
        await live.publish(thread_id, live.TurnFinished(type="turn.finished", turn_id=turn_id))
    return len(found)


async def _reaper_loop() -> None:
    while True:
        await asyncio.sleep(settings.TURN_REAPER_SECONDS)
        try:
            reaped = await reap_stale_turns()
            if reaped:
                log.warning("marked %d turn(s) of a dead worker as interrupted", reaped)
        except store.DATABASE_UNREACHABLE:
            store.note_database_trouble()
            log.warning("could not look for interrupted turns: database unreachable")
        except Exception:
            log.exception("could not look for interrupted turns")


_reaper: asyncio.Task[None] | None = None


def ensure_reaper() -> None:
    """Start this worker's periodic look for dead workers' turns (once per event loop)."""
    global _reaper
    if _reaper is None or _reaper.done() or _reaper.get_loop() is not asyncio.get_running_loop():
        _reaper = asyncio.get_running_loop().create_task(
            _reaper_loop(), name="turn-reaper", context=contextvars.Context()
        )

"""Writing a turn: its checkpoints, its end (with its usage, in one transaction, retried while
the database is unreachable) and the closing of a dead runner's turn.

When the database is unreachable, no worker takes a stale heartbeat for a dead runner until the
database has answered again for ``TURN_STALE_SECONDS`` (``heartbeats_are_trustworthy``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from chat.models import TURN_USAGE_FIELDS, Turn
from chat.services import turn_mirror, usage
from chat.upstream.events import Usage

log = logging.getLogger(__name__)

T = TypeVar("T")

# What an unreachable database (restarting, refusing connections, a dropped connection) raises;
# other database errors are not worth waiting for.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
# Backoff between attempts to store the end of a turn: short at first (a dropped connection is
# replaced at once), never so long that the write lands long after the database is back.
FINISH_RETRY_FIRST_DELAY = 0.1
FINISH_RETRY_MAX_DELAY = 2.0

REAPED_ERROR = (
    "This answer was cut off: the server writing it stopped, or could not reach the database,"
    " before it finished."
)

# When this process last failed to reach the database (time.monotonic()), or None.
_database_trouble_at: float | None = None


def note_database_trouble() -> None:
    """Remember that the database was unreachable: heartbeats could not be written meanwhile."""
    global _database_trouble_at
    _database_trouble_at = time.monotonic()


def heartbeats_are_trustworthy() -> bool:
    """Whether a stale heartbeat means a dead runner: not until the database has answered for
    ``TURN_STALE_SECONDS`` since this process last failed to reach it (every runner had its
    chance to write its heartbeat, or the end of its turn, since)."""
    trouble = _database_trouble_at
    return trouble is None or time.monotonic() - trouble >= settings.TURN_STALE_SECONDS


def usage_fields(tokens: Usage) -> dict[str, int]:
    """The turn's usage columns, from what the gateway reported."""
    return {name: getattr(tokens, name) for name in TURN_USAGE_FIELDS}


def checkpoint(turn_id: int, fields: dict[str, Any]) -> bool:
    """Save a running turn's answer so far and say its runner is alive (one UPDATE). False when
    the turn is no longer running here (finished, closed, or deleted)."""
    return bool(
        Turn.objects.filter(pk=turn_id, status=Turn.Status.IN_PROGRESS).update(
            **fields, heartbeat_at=timezone.now()
        )
    )


async def retry_while_unreachable(write: Callable[[], Awaitable[T]], *, what: str) -> T:
    """``write()``, tried again with backoff while the database is unreachable, for up to
    ``TURN_FINISH_RETRY_SECONDS``: the end of a turn is what its viewers waited for."""
    deadline = time.monotonic() + settings.TURN_FINISH_RETRY_SECONDS
    delay = FINISH_RETRY_FIRST_DELAY
    while True:
        try:
            return await write()
        except DATABASE_UNREACHABLE as error:
            note_database_trouble()
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning(
                "could not store %s (%s); trying again in %.1f s",
                what,
                str(error).strip() or type(error).__name__,
                min(delay, left),
            )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, FINISH_RETRY_MAX_DELAY)


def store_end(
    turn: Turn,
    fields: dict[str, Any],
    *,
    earlier_usage: Usage | None,
    extras: Callable[[Turn], None] | None = None,
) -> bool:
    """Store the end of the turn and its usage record in one transaction (a retry after a
    failure that left it unclear whether the commit happened never counts twice). True when
    this runner's end is what the turn now shows. ``earlier_usage``: what earlier runners of a
    resumed turn already recorded. ``extras(turn)`` stores, in the same transaction, what the
    answer brought besides its text (other choices, spoken answers: ``choices.Extras``)."""
    for name, value in fields.items():
        setattr(turn, name, value)
    with transaction.atomic():
        stored = Turn.objects.filter(pk=turn.pk, status__in=Turn.ACTIVE).update(
            **fields, runner_channel=""
        )
        if stored:
            # Also while paused for a tool answer: those tokens are spent even if nobody
            # answers (record_turn records only what is new when the turn resumes).
            usage.record_turn(turn)
            if extras is not None:
                extras(turn)
        elif Turn.objects.filter(pk=turn.pk, status=Turn.Status.INTERRUPTED).update(
            **fields, runner_channel=""
        ):
            # Closed from its last checkpoint by a worker that took this runner for dead:
            # the whole answer replaces that, and only usage not recorded yet is added.
            usage.record_turn(turn, recount=True)
            if extras is not None:
                extras(turn)
        elif not Turn.objects.filter(pk=turn.pk).exists():
            # Deleted with its thread meanwhile: the tokens were spent all the same.
            earlier = None if earlier_usage is None else asdict(earlier_usage)
            usage.record_turn(turn, deleted=True, recorded=earlier)
            return False
        else:
            return False  # stored by an earlier attempt whose reply was lost
    return True


def close_dead_turn(turn_id: int, is_stale: Q) -> bool:
    """Mark one dead runner's turn interrupted and record its usage, in one transaction. False
    when it is no longer stale and running (its runner wrote meanwhile, or another worker
    closed it first): only the worker whose update matched records the usage."""
    with transaction.atomic():
        closed = Turn.objects.filter(is_stale, pk=turn_id, status=Turn.Status.IN_PROGRESS).update(
            status=Turn.Status.INTERRUPTED,
            error=REAPED_ERROR,
            finished_at=timezone.now(),
            runner_channel="",
        )
        if closed:
            # Measured when the checkpoints stored usage (finished tool steps), else estimated
            # from the stored text.
            usage.record_turn(Turn.objects.select_related("provider").get(pk=turn_id))
    return bool(closed)


def restore_mirrored_text(turn_ids: list[int]) -> None:
    """Running turns get the text their dead runner had shown since its last checkpoint, from
    the mirror in Redis (``turn_mirror``), when it is newer."""
    turns = Turn.objects.filter(pk__in=turn_ids, status=Turn.Status.IN_PROGRESS).only(
        "status", "output_text", "reasoning_text"
    )
    for turn in turn_mirror.freshen(turns):
        Turn.objects.filter(pk=turn.pk, status=Turn.Status.IN_PROGRESS).update(
            output_text=turn.output_text, reasoning_text=turn.reasoning_text
        )

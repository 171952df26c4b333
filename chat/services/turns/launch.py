"""The entry points of a turn, used by the consumer and the views: send a message (in a thread
or as the first of a new one), branch (retry, regenerate, edit), answer a tool call. Each plans
the turn (``planning``), starts its runner and tells the thread's sockets (``chat.live``).

The time to first token is the order of this: one hop to the database thread (every socket and
runner of the worker queue there; the event loop waits for it rather than share the GIL with it,
``first_hop``), then the runner's first step (the request written to the gateway), then the
announcement rendered on the loop while the gateway works (the first delta waits for it)."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable

from channels.db import database_sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import transaction

from chat import live
from chat.channel_layer import ChannelLayerUnavailable
from chat.models import Thread, Turn
from chat.services.turns import admission, first_hop, planning, registry
from chat.services.turns.runner import StreamState, TurnRunner

log = logging.getLogger(__name__)


async def start_turn(
    user,
    thread_id: int,
    text: str,
    attachment_ids: list[uuid.UUID] | None = None,
    *,
    allowed: Callable[[], Thread | None] | None = None,
) -> Turn | None:
    """Send a message (with the user's unsent files ``attachment_ids``) at the end of the
    thread's current path. ``allowed``: the sender's own checks (a socket's session and
    access), run first in the same database-thread hop: the thread they may write to, or None
    (then nothing is planned and None is returned). Raises TurnRejected."""
    registry.refuse_while_shutting_down()
    admission.refuse_when_full()
    channel = live.new_runner_channel()

    def plan() -> planning.TurnPlan | None:
        thread = None
        if allowed is not None and (thread := allowed()) is None:
            return None
        return planning.plan_turn(
            user,
            thread_id=thread_id,
            text=text,
            channel=channel,
            attachment_ids=attachment_ids,
            thread=thread,
        )

    planned = await first_hop.run(plan)
    return None if planned is None else await _launch(planned)


async def start_new_thread(
    user,
    create_thread: Callable[[], Thread],
    text: str,
    attachment_ids: list[uuid.UUID] | None = None,
) -> Turn:
    """The first message of a new chat: ``create_thread()`` and the first turn are created in
    one transaction, so a refused turn (quota, rate limit, empty message…) leaves no empty chat
    behind. Raises TurnRejected."""
    admission.refuse_when_full()
    channel = live.new_runner_channel()

    def plan() -> planning.TurnPlan:
        with transaction.atomic():
            thread = create_thread()
            return planning.plan_turn(
                user,
                thread_id=thread.pk,
                text=text,
                channel=channel,
                attachment_ids=attachment_ids,
                new_chat=True,
            )

    return await _launch(await first_hop.run(plan))


async def branch_turn(user, turn_id: int, text: str | None = None) -> Turn:
    """A new sibling of ``turn_id``: the same message asked again (regenerate, retry), or an
    edited one. The new branch becomes the visible path. Raises TurnRejected."""
    registry.refuse_while_shutting_down()
    admission.refuse_when_full()
    channel = live.new_runner_channel()
    return await _launch(
        await first_hop.run(
            functools.partial(
                planning.plan_branch, user, turn_id=turn_id, text=text, channel=channel
            )
        )
    )


async def answer_tool_call(user, turn_id: int, call_id: str, result: str | None) -> None:
    """The user's result for a call (``None`` rejects it); resumes the turn once all are in."""
    registry.refuse_while_shutting_down()
    plan = await database_sync_to_async(planning.record_tool_answer)(
        user, turn_id=turn_id, call_id=call_id, result=result, channel=live.new_runner_channel()
    )
    if plan is None:
        await registry.publish_update(turn_id)
        return
    runner = TurnRunner(plan, StreamState.resumed(plan.turn))
    registry.add(runner)
    # Pages show the paused turn without a live answer (no offset marker to update): each
    # socket must redraw it live (``turn.updated``) before the resumed turn's first delta.
    runner.announced.clear()
    runner.start()
    try:
        await registry.publish_update(turn_id)
    finally:
        runner.announced.set()


async def _launch(plan: planning.TurnPlan) -> Turn:
    registry.ensure_reaper()
    runner = TurnRunner(plan)

    registry.add(runner)
    # The upstream request starts now; its first delta waits until the sockets were told
    # about the turn.
    runner.announced.clear()
    runner.start()
    try:
        # The runner's first step goes first: it writes the request to the gateway without
        # waiting (chat/upstream/network.py), and the announcement is rendered while the
        # gateway works on it.
        await asyncio.sleep(0)
        await live.publish(plan.turn.thread_id, await _announcement(plan))
    except ChannelLayerUnavailable:  # the turn runs; sockets catch up when Redis is back
        log.warning("could not announce turn %s", plan.turn.pk)
    finally:
        runner.announced.set()
    return plan.turn


async def _announcement(plan: planning.TurnPlan) -> live.TurnCreated:
    """``turn.created`` rendered on the loop (the plan loaded what the fragment shows: no
    query, no second hop); in the database thread should the fragment need the database."""
    try:
        return _created(plan)
    except SynchronousOnlyOperation:
        return await database_sync_to_async(_created)(plan)


def _created(plan: planning.TurnPlan) -> live.TurnCreated:
    return live.created(plan.turn, linear=plan.linear, siblings=plan.siblings, log=log)

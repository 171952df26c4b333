"""Runs one turn: upstream → normalized events → stored turn + live updates to the thread's group.

A turn runs as its own asyncio task, not tied to any websocket: closing the tab, reloading or a
second viewer joining neither stops nor duplicates it. Deltas are coalesced before they are
published (at most one update per ``STREAM_COALESCE_SECONDS``) and the database is written a
bounded number of times per turn: at the start, at periodic checkpoints and at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.markdown import StreamingMarkdown
from chat.models import Provider, Turn
from chat.services import conversation, usage
from chat.services.providers import client_for, default_provider
from chat.upstream import chat_completions, responses_api
from chat.upstream.events import (
    Completed,
    Event,
    Failed,
    ReasoningDelta,
    Started,
    TextDelta,
    Usage,
)

log = logging.getLogger(__name__)

# Turns running in this process, by id. Holding the runner also keeps its task alive.
_running: dict[int, TurnRunner] = {}


def thread_group(thread_id: int) -> str:
    return f"thread-{thread_id}"


@dataclass
class TurnPlan:
    """Everything a runner needs, loaded before the upstream call so it never touches the ORM."""

    turn: Turn
    provider: Provider
    path: list[Turn]  # the turns before this one, root first


@dataclass
class StreamState:
    """What the runner has accumulated so far; published and checkpointed from here."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    answer: StreamingMarkdown = field(default_factory=StreamingMarkdown)
    thoughts: StreamingMarkdown = field(default_factory=StreamingMarkdown)
    response_id: str = ""
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    status: str = Turn.Status.IN_PROGRESS
    error: str = ""
    first_token_at: float | None = None

    @property
    def has_output(self) -> bool:
        return bool(self.text or self.reasoning)


class TurnRunner:
    def __init__(self, plan: TurnPlan) -> None:
        self.plan = plan
        self.turn_id = plan.turn.pk
        self.group = thread_group(plan.turn.thread_id)
        self.state = StreamState(model=plan.turn.model)
        self.stop_requested = False
        self.task: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._channel_layer = get_channel_layer()

    # -- public -------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        # A fresh context: the task must not inherit the request's thread-sensitive executor,
        # which asgiref shuts down when that request ends (the turn outlives it).
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"turn-{self.turn_id}", context=contextvars.Context()
        )
        return self.task

    def stop(self) -> None:
        self.stop_requested = True
        if self.task is not None:
            self.task.cancel()

    def snapshot(self) -> dict:
        """The answer so far, in the shape of a delta message starting at block 0."""
        return {
            "turn_id": self.turn_id,
            "start": 0,
            "blocks": list(self.state.answer.blocks),
            "tail": self.state.answer.tail_html,
            "reasoning_start": 0,
            "reasoning_blocks": list(self.state.thoughts.blocks),
            "reasoning_tail": self.state.thoughts.tail_html,
        }

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        started = time.monotonic()
        flusher = asyncio.create_task(self._flush_loop())
        try:
            await self._consume(started)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
            self.state.status = (
                Turn.Status.CANCELLED if self.stop_requested else Turn.Status.INTERRUPTED
            )
            if not self.stop_requested:
                self.state.error = "The server shut down before this answer finished."
        except Exception:
            log.exception("turn %s failed inside Switchboard", self.turn_id)
            self.state.status = Turn.Status.FAILED
            self.state.error = "Switchboard hit an internal error while generating this answer."
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._finish(time.monotonic() - started, started)
            _running.pop(self.turn_id, None)

    async def _consume(self, started: float) -> None:
        last_checkpoint = started
        retried_with_history = False
        while True:
            failure = None
            async with contextlib.aclosing(self._upstream_events(retried_with_history)) as events:
                async for event in events:
                    if isinstance(event, Failed):
                        failure = event
                        break
                    self._apply(event, started)
                    now = time.monotonic()
                    if now - last_checkpoint >= settings.STREAM_CHECKPOINT_SECONDS:
                        last_checkpoint = now
                        await self._checkpoint()
            if failure is None:
                break
            if (
                failure.unknown_previous_response
                and not retried_with_history
                and not self.state.has_output
            ):
                # The upstream forgot the previous response: resend the whole path, once.
                retried_with_history = True
                continue
            self.state.status = Turn.Status.FAILED
            self.state.error = failure.message
            break
        if self.state.status == Turn.Status.IN_PROGRESS:
            self.state.status = Turn.Status.FAILED
            self.state.error = "The gateway ended the answer without saying it was complete."

    def _upstream_events(self, full_history: bool) -> AsyncIterator[Event]:
        turn, path = self.plan.turn, self.plan.path
        client = client_for(self.plan.provider)
        if turn.api == Provider.Api.CHAT:
            messages = conversation.responses_history(path, turn.user_text)
            return client.stream_chat(
                chat_completions.build_request(turn.model, messages, params=turn.params)
            )
        previous = (
            None if full_history else conversation.continuation_id(path[-1] if path else None)
        )
        payload = (
            turn.user_text if previous else conversation.responses_history(path, turn.user_text)
        )
        body = responses_api.build_request(
            turn.model, payload, previous_response_id=previous, params=turn.params
        )
        return client.stream_responses(body)

    def _apply(self, event: Event, started: float) -> None:
        state = self.state
        if isinstance(event, TextDelta | ReasoningDelta):
            if state.first_token_at is None:
                state.first_token_at = time.monotonic()
            if isinstance(event, TextDelta):
                state.text.append(event.text)
                state.answer.append(event.text)
            else:
                state.reasoning.append(event.text)
                state.thoughts.append(event.text)
            self._dirty.set()
        elif isinstance(event, Started):
            state.response_id = event.response_id or state.response_id
            state.model = event.model or state.model
        elif isinstance(event, Usage):
            state.usage = event
        elif isinstance(event, Completed):
            state.response_id = event.response_id or state.response_id
            state.status = (
                Turn.Status.INCOMPLETE if event.status == "incomplete" else Turn.Status.COMPLETED
            )
            if event.reason:
                state.error = f"The answer stopped early ({event.reason.replace('_', ' ')})."

    def _store_end(self, fields: dict) -> None:
        Turn.objects.filter(pk=self.turn_id).update(**fields)
        turn = self.plan.turn
        for name, value in fields.items():
            setattr(turn, name, value)
        usage.record_turn(turn)

    # -- publishing and storing ---------------------------------------------------------------

    async def _flush_loop(self) -> None:
        # The first delta goes out at once (time to first token); later ones at most once a window.
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish_delta()
            await asyncio.sleep(settings.STREAM_COALESCE_SECONDS)

    async def _publish_delta(self) -> None:
        answer_start, thoughts_start = (
            len(self.state.answer.blocks),
            len(self.state.thoughts.blocks),
        )
        blocks, tail = self.state.answer.flush()
        reasoning_blocks, reasoning_tail = self.state.thoughts.flush()
        await self._channel_layer.group_send(
            self.group,
            {
                "type": "turn.delta",
                "turn_id": self.turn_id,
                "start": answer_start,
                "blocks": blocks,
                "tail": tail,
                "reasoning_start": thoughts_start,
                "reasoning_blocks": reasoning_blocks,
                "reasoning_tail": reasoning_tail,
            },
        )

    async def _checkpoint(self) -> None:
        await database_sync_to_async(
            Turn.objects.filter(pk=self.turn_id, status=Turn.Status.IN_PROGRESS).update
        )(output_text="".join(self.state.text), reasoning_text="".join(self.state.reasoning))

    async def _finish(self, elapsed: float, started: float) -> None:
        state = self.state
        first = state.first_token_at
        fields = {
            "status": state.status,
            "error": state.error,
            "output_text": "".join(state.text),
            "reasoning_text": "".join(state.reasoning),
            "response_id": state.response_id,
            "model": state.model,
            "input_tokens": state.usage.input_tokens,
            "output_tokens": state.usage.output_tokens,
            "total_tokens": state.usage.total_tokens,
            "cached_tokens": state.usage.cached_tokens,
            "reasoning_tokens": state.usage.reasoning_tokens,
            "time_to_first_token_ms": round((first - started) * 1000) if first else None,
            "duration_ms": round(elapsed * 1000),
            "finished_at": timezone.now(),
        }
        try:
            await database_sync_to_async(self._store_end)(fields)
        except Exception:
            log.exception("could not store the end of turn %s", self.turn_id)
        await self._channel_layer.group_send(
            self.group, {"type": "turn.finished", "turn_id": self.turn_id}
        )


# -- entry points used by views and consumers ----------------------------------------------------


def _plan_turn(
    user, thread_id: int, text: str, parent_id: int | None, use_current: bool
) -> TurnPlan:
    with transaction.atomic():
        thread = conversation.thread_for(user, thread_id)
        if thread is None:
            raise conversation.TurnRejected("This chat no longer exists.")
        text = conversation.validate_message(text, settings.MAX_MESSAGE_CHARS)
        if thread.turns.filter(status=Turn.Status.IN_PROGRESS).exists():
            raise conversation.TurnRejected("An answer is still being written. Stop it or wait.")
        provider = (
            thread.provider if thread.provider and thread.provider.enabled else default_provider()
        )
        if provider is None:
            raise conversation.TurnRejected(
                "No gateway is configured. Ask an administrator to add one."
            )
        if not thread.model:
            raise conversation.TurnRejected("Pick a model first.")
        usage.check_allowed(user, provider, thread.model)
        path = conversation.thread_path(thread)
        if not use_current:
            path = path[: next((i for i, t in enumerate(path) if t.pk == parent_id), -1) + 1]
        turn = Turn.objects.create(
            thread=thread,
            parent=path[-1] if path else None,
            author=user,
            user_text=text,
            api=provider.default_api,
            provider=provider,
            model=thread.model,
        )
        thread.current_turn = turn
        if not path:
            thread.title = conversation.title_from(text)
        thread.save(update_fields=["current_turn", "title", "updated_at"])
        return TurnPlan(turn=turn, provider=provider, path=path)


async def _launch(plan: TurnPlan) -> Turn:
    runner = TurnRunner(plan)
    _running[plan.turn.pk] = runner
    await get_channel_layer().group_send(
        thread_group(plan.turn.thread_id), {"type": "turn.created", "turn_id": plan.turn.pk}
    )
    runner.start()
    return plan.turn


async def start_turn(user, thread_id: int, text: str) -> Turn:
    """Send a message at the end of the thread's current path. Raises TurnRejected."""
    plan = await database_sync_to_async(_plan_turn)(user, thread_id, text, None, True)
    return await _launch(plan)


async def retry_turn(user, turn_id: int) -> Turn:
    """Ask again: a new sibling of ``turn_id`` with the same message. Raises TurnRejected."""

    def plan() -> TurnPlan:
        turn = Turn.objects.filter(pk=turn_id).only("thread_id", "parent_id", "user_text").first()
        if turn is None or conversation.thread_for(user, turn.thread_id) is None:
            raise conversation.TurnRejected("This message no longer exists.")
        return _plan_turn(user, turn.thread_id, turn.user_text, turn.parent_id, False)

    return await _launch(await database_sync_to_async(plan)())


def stop_turn(turn_id: int) -> bool:
    runner = _running.get(turn_id)
    if runner is None:
        return False
    runner.stop()
    return True


def running_snapshot(turn_id: int) -> dict | None:
    runner = _running.get(turn_id)
    return runner.snapshot() if runner else None


async def wait_for(turn_id: int) -> None:
    """Wait until a turn running in this process has finished and been stored."""
    runner = _running.get(turn_id)
    if runner is not None and runner.task is not None:
        await asyncio.shield(runner.task)


def mark_interrupted_turns() -> int:
    """On start-up: turns a previous process left generating keep their text, marked interrupted."""
    return (
        Turn.objects.filter(status=Turn.Status.IN_PROGRESS)
        .exclude(pk__in=list(_running))
        .update(
            status=Turn.Status.INTERRUPTED,
            error="The server restarted before this answer finished.",
            finished_at=timezone.now(),
        )
    )

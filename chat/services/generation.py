"""Runs one turn: upstream → normalized events → stored turn + live updates to the thread's group.

A turn runs as its own asyncio task, not tied to any websocket: closing the tab, reloading or a
second viewer joining neither stops nor duplicates it. Deltas are coalesced before they are
published (at most one update per ``STREAM_COALESCE_SECONDS``) and the database is written a
bounded number of times per turn: at the start, at periodic checkpoints and at the end.

When the model calls tools, the runner executes built-in ones and sends the results back, step
after step, until the model answers in text or ``TOOL_MAX_STEPS`` is reached. A tool with no
built-in implementation pauses the turn (``awaiting_tool``) until the user answers it; the answer
resumes the turn in a new runner from what ``Turn.tool_calls`` recorded.

Any worker can serve any viewer: a runner listens on its own channel-layer channel (its name is
stored on the turn), so a stop pressed on another worker, or a snapshot asked for by a socket on
another worker, reaches it. While it runs it writes a heartbeat with each checkpoint; a turn
whose heartbeat goes stale (its worker died) is marked interrupted by whichever worker notices,
which records its usage.

The end of a turn is written in one transaction with its usage record. When the database is
unreachable at that moment, the write is tried again with backoff for up to
``TURN_FINISH_RETRY_SECONDS``, and no worker takes a stale heartbeat for a dead runner until
the database has answered again for ``TURN_STALE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from chat import fragments, image_policy
from chat.channel_layer import ChannelLayerUnavailable
from chat.markdown import StreamingMarkdown, render_tail
from chat.models import Provider, Thread, Turn
from chat.services import conversation, fallbacks, parameters, tool_loop, turn_mirror, usage
from chat.services.providers import default_provider
from chat.services.upstream_request import RequestPlan
from chat.upstream.events import (
    Completed,
    Event,
    Failed,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    Usage,
)

log = logging.getLogger(__name__)

# Turns running in this process, by id. Holding the runner also keeps its task alive.
_running: dict[int, TurnRunner] = {}

RUNNER_CHANNEL_PREFIX = "turn-runner"

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


# False once this process is shutting down (``chat.shutdown``): new turns go to other workers.
accepting_turns = True

# A streamed tail longer than this (one huge list, table or paragraph is one open block, parsed
# again at every flush) is rendered in a worker thread, not on the event loop that serves every
# socket of the worker. Shorter ones cost less than the thread hop (about a millisecond).
INLINE_RENDER_CHARS = 8_192
_RENDER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="markdown")
# After a flush that took t seconds the next waits at least this many times t: a tail that is
# slow to render is rendered less often, so it never takes more than a third of a core.
FLUSH_BACKOFF = 2.0


def thread_group(thread_id: int) -> str:
    return f"thread-{thread_id}"


def _new_runner_channel() -> str:
    """A plain channel, not a process-local one (``new_channel()``'s ``!`` names): channels_redis
    serves all of a process's local channels through one receive lock, and a runner waiting on
    it would starve every websocket of that worker."""
    return f"{RUNNER_CHANNEL_PREFIX}.{uuid.uuid4().hex}"


@dataclass
class TurnPlan:
    """Everything a runner needs, loaded before the upstream call so it never touches the ORM."""

    turn: Turn
    provider: Provider
    request: RequestPlan
    linear: bool = True  # the turn continues the path on screen (not a new branch)
    # Where the turn stands among its siblings, known when it was created (no turn can be
    # added to the thread while it runs); None: ask the database when rendering.
    siblings: conversation.Siblings | None = None

    @property
    def channel(self) -> str:
        """Where the runner listens for stop and snapshot requests (stored with the turn)."""
        return self.turn.runner_channel


@dataclass
class StreamState:
    """What the runner has accumulated so far; published and checkpointed from here."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    answer: StreamingMarkdown = field(default_factory=StreamingMarkdown)
    thoughts: StreamingMarkdown = field(default_factory=StreamingMarkdown)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tools_changed: bool = False
    response_id: str = ""
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    status: str = Turn.Status.IN_PROGRESS
    error: str = ""
    first_token_at: float | None = None

    @property
    def has_output(self) -> bool:
        return bool(self.text or self.reasoning or self.tool_calls)

    def add_usage(self, step: Usage) -> None:
        """Tool-loop steps each report usage; the turn's is their sum."""
        total = self.usage
        self.usage = Usage(
            total.input_tokens + step.input_tokens,
            total.output_tokens + step.output_tokens,
            total.total_tokens + step.total_tokens,
            total.cached_tokens + step.cached_tokens,
            total.reasoning_tokens + step.reasoning_tokens,
        )

    @classmethod
    def resumed(cls, turn: Turn) -> StreamState:
        """The state of a turn paused for a tool answer, to carry on from."""
        state = cls(
            response_id=turn.response_id,
            model=turn.model,
            tool_calls=list(turn.tool_calls),
            usage=Usage(
                turn.input_tokens,
                turn.output_tokens,
                turn.total_tokens,
                turn.cached_tokens,
                turn.reasoning_tokens,
            ),
        )
        if turn.output_text:
            state.text.append(turn.output_text)
            state.answer.append(turn.output_text)
        if turn.reasoning_text:
            state.reasoning.append(turn.reasoning_text)
            state.thoughts.append(turn.reasoning_text)
        return state


class TurnRunner:
    def __init__(self, plan: TurnPlan, state: StreamState | None = None) -> None:
        self.plan = plan
        self.turn_id = plan.turn.pk
        self.group = thread_group(plan.turn.thread_id)
        self.state = state or StreamState(model=plan.turn.model)
        self.resuming = state is not None
        # What earlier runners of this turn (a tool loop resumed) already recorded as usage.
        self.usage_at_start = self.state.usage
        self.stop_requested = False
        # Set while the end of the turn is being stored: a stop then must not cancel that write.
        self.finishing = False
        self.task: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        # Set once the thread's sockets were told about the turn (``_launch``): no delta may
        # reach them before the turn itself.
        self.announced = asyncio.Event()
        self.announced.set()
        self._channel_layer = get_channel_layer()
        self.mirror = turn_mirror.TextMirror(self.turn_id)

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
        if self.task is not None and not self.finishing:
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
            "tools_html": fragments.tool_cards(self.turn_id, self.state.tool_calls),
        }

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        started = time.monotonic()
        helpers = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._checkpoint_loop()),
            asyncio.create_task(self._control_loop()),
        ]
        if self.resuming:
            self._dirty.set()
        try:
            await self._consume(started)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
            self.state.status = (
                Turn.Status.CANCELLED if self.stop_requested else Turn.Status.INTERRUPTED
            )
            if not self.stop_requested:
                self.state.error = "The server restarted before this answer finished."
        except Exception:
            log.exception("turn %s failed inside Switchboard", self.turn_id)
            self.state.status = Turn.Status.FAILED
            self.state.error = "Switchboard hit an internal error while generating this answer."
        finally:
            self.finishing = True
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._finish(time.monotonic() - started, started)
            _running.pop(self.turn_id, None)

    async def _consume(self, started: float) -> None:
        request = self.plan.request
        if self.resuming:
            api, body = request.after_tools(self.state.tool_calls, self.state.response_id)
        else:
            api, body = request.first()
        steps = len({call["step"] for call in self.state.tool_calls})
        retried_with_history = False
        while True:
            self.state.status = Turn.Status.IN_PROGRESS
            failure, calls = await self._stream_step(api, body, started, steps + 1)
            if failure is not None:
                if (
                    failure.unknown_previous_response
                    and not retried_with_history
                    and not self.state.has_output
                ):
                    # The upstream forgot the previous response: resend the whole path, once.
                    retried_with_history = True
                    api, body = request.first(full_history=True)
                    continue
                self.state.status, self.state.error = Turn.Status.FAILED, failure.message
                return
            if self.state.status == Turn.Status.IN_PROGRESS:
                self.state.status = Turn.Status.FAILED
                self.state.error = "The gateway ended the answer without saying it was complete."
                return
            if not calls:
                return
            steps += 1
            if not await tool_loop.execute(calls, request.tools):
                self.state.status = Turn.Status.AWAITING_TOOL
                self.state.tools_changed = True
                return
            self.state.tools_changed = True
            self._dirty.set()
            if steps >= settings.TOOL_MAX_STEPS:
                self.state.status = Turn.Status.INCOMPLETE
                self.state.error = f"Stopped after {steps} tool steps without a final answer."
                return
            api, body = request.after_tools(self.state.tool_calls, self.state.response_id)

    async def _stream_step(
        self, api: str, body: dict, started: float, step: int
    ) -> tuple[Failed | None, list[dict[str, Any]]]:
        """Stream one upstream request; returns its failure, if any, and the calls it made."""
        # The model's fallback chain: another model when this one fails before answering.
        stream = fallbacks.stream_events(self.plan.provider, api, body)
        calls: dict[int, dict[str, Any]] = {}
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if isinstance(event, Failed):
                    return event, []
                if isinstance(event, ToolCallDelta | ToolCallDone):
                    self._apply_tool_event(event, calls, step)
                else:
                    self._apply(event)
        return None, list(calls.values())

    def _apply(self, event: Event) -> None:
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
            state.add_usage(event)
        elif isinstance(event, Completed):
            state.response_id = event.response_id or state.response_id
            state.status = (
                Turn.Status.INCOMPLETE if event.status == "incomplete" else Turn.Status.COMPLETED
            )
            if event.reason:
                state.error = f"The answer stopped early ({event.reason.replace('_', ' ')})."

    def _apply_tool_event(
        self, event: ToolCallDelta | ToolCallDone, calls: dict[int, dict[str, Any]], step: int
    ) -> None:
        call = calls.get(event.index)
        if call is None:
            call = {
                "step": step,
                "call_id": "",
                "name": "",
                "arguments": "",
                "status": "streaming",
                "result": "",
            }
            calls[event.index] = call
            self.state.tool_calls.append(call)
            if self.state.first_token_at is None:
                self.state.first_token_at = time.monotonic()
        if isinstance(event, ToolCallDone):
            call.update(call_id=event.call_id, name=event.name, arguments=event.arguments)
        else:
            call["call_id"] = event.call_id or call["call_id"]
            call["name"] = event.name or call["name"]
            call["arguments"] += event.arguments_delta
        self.state.tools_changed = True
        self._dirty.set()

    # -- publishing and storing ---------------------------------------------------------------

    async def _flush_loop(self) -> None:
        # The first delta goes out at once (time to first token); later ones at most once a window.
        while True:
            await self._dirty.wait()
            await self.announced.wait()
            self._dirty.clear()
            began = time.monotonic()
            try:
                await self._publish_delta()
            except ChannelLayerUnavailable:
                # Redis is down for longer than a send waits: the turn goes on; sockets see
                # the gap at the next delta (or reconnect) and ask for the whole answer.
                log.warning("could not publish a delta of turn %s", self.turn_id)
            took = time.monotonic() - began
            await asyncio.sleep(max(settings.STREAM_COALESCE_SECONDS, FLUSH_BACKOFF * took))

    async def _publish_delta(self) -> None:
        state = self.state
        answer_start, thoughts_start = len(state.answer.blocks), len(state.thoughts.blocks)
        answer, thoughts = state.answer.take(), state.thoughts.take()

        images = image_policy.current()  # on the loop: the cached list, never a query

        def render() -> tuple:
            return tuple(
                None if text is None else render_tail(text, images) for text in (answer, thoughts)
            )

        if len(answer or "") + len(thoughts or "") > INLINE_RENDER_CHARS:
            rendered = await asyncio.get_running_loop().run_in_executor(_RENDER_POOL, render)
        else:
            rendered = render()
        blocks, tail = state.answer.commit(rendered[0])
        reasoning_blocks, reasoning_tail = state.thoughts.commit(rendered[1])
        message = {
            "type": "turn.delta",
            "turn_id": self.turn_id,
            "start": answer_start,
            "blocks": blocks,
            "tail": tail,
            "reasoning_start": thoughts_start,
            "reasoning_blocks": reasoning_blocks,
            "reasoning_tail": reasoning_tail,
        }
        if state.tools_changed:
            state.tools_changed = False
            message["tools_html"] = fragments.tool_cards(self.turn_id, state.tool_calls)
        # Built once here for every socket that holds exactly the blocks before this delta.
        message["html"] = fragments.shared_delta(message)
        # Mirrored before it is shown: a dead worker's turn is then stored with what was seen.
        await self.mirror.write(state.text, state.reasoning)
        await self._channel_layer.group_send(self.group, message)

    async def _checkpoint_loop(self) -> None:
        # On a timer, not per event: the heartbeat must go on while the upstream is silent.
        while True:
            await asyncio.sleep(settings.STREAM_CHECKPOINT_SECONDS)
            try:
                await self._checkpoint()
            except DATABASE_UNREACHABLE:
                note_database_trouble()
                log.warning("could not checkpoint turn %s: database unreachable", self.turn_id)
            except Exception:
                log.exception("could not checkpoint turn %s", self.turn_id)

    async def _checkpoint(self) -> None:
        """Save the answer so far and its usage and say this runner is alive (one UPDATE). A
        turn deleted meanwhile (its thread, from any worker or the shell) is stopped."""
        saved = await database_sync_to_async(
            Turn.objects.filter(pk=self.turn_id, status=Turn.Status.IN_PROGRESS).update
        )(
            output_text="".join(self.state.text),
            reasoning_text="".join(self.state.reasoning),
            tool_calls=self.state.tool_calls,
            heartbeat_at=timezone.now(),
            **self._usage_fields(),
        )
        if not saved and not await Turn.objects.filter(pk=self.turn_id).aexists():
            self.stop()

    def _usage_fields(self) -> dict[str, int]:
        tokens = self.state.usage
        return {
            "input_tokens": tokens.input_tokens,
            "output_tokens": tokens.output_tokens,
            "total_tokens": tokens.total_tokens,
            "cached_tokens": tokens.cached_tokens,
            "reasoning_tokens": tokens.reasoning_tokens,
        }

    async def _control_loop(self) -> None:
        """Stop and snapshot requests from sockets on any worker."""
        while True:
            message = await self._channel_layer.receive(self.plan.channel)
            kind = message.get("type")
            if kind == "turn.stop":
                self.stop()
            elif kind == "snapshot.request":
                reply = {"type": "turn.snapshot", **self.snapshot()}
                with contextlib.suppress(Exception):  # the asking socket may be gone
                    await self._channel_layer.send(message["reply_to"], reply)

    async def _finish(self, elapsed: float, started: float) -> None:
        state = self.state
        first = state.first_token_at
        fields = {
            "status": state.status,
            "error": state.error,
            "output_text": "".join(state.text),
            "reasoning_text": "".join(state.reasoning),
            "tool_calls": state.tool_calls,
            "response_id": state.response_id,
            "model": state.model,
            **self._usage_fields(),
            "duration_ms": (self.plan.turn.duration_ms or 0) + round(elapsed * 1000),
            "finished_at": timezone.now(),
        }
        if not self.resuming:
            fields["time_to_first_token_ms"] = round((first - started) * 1000) if first else None
        try:
            html = await self._store_end_retrying(fields)
        except Exception:
            # The turn stays as its last checkpoint said; a reaper closes it (and records its
            # usage) once the database has answered again for a while.
            log.exception("could not store the end of turn %s", self.turn_id)
            return
        message = {"type": "turn.finished", "turn_id": self.turn_id}
        if html:
            message["html"] = html  # every socket shows this; none reads the turn again
        await self._tell_viewers(message)

    async def _tell_viewers(self, message: dict) -> None:
        try:
            await self._channel_layer.group_send(self.group, message)
        except ChannelLayerUnavailable:  # they fetch the stored turn when Redis is back
            log.warning("could not tell turn %s's viewers about %s", self.turn_id, message["type"])

    async def _store_end_retrying(self, fields: dict) -> str:
        """The end of a turn is what its viewers waited for: while the database is unreachable,
        try again with backoff, for up to ``TURN_FINISH_RETRY_SECONDS``."""
        deadline = time.monotonic() + settings.TURN_FINISH_RETRY_SECONDS
        delay = FINISH_RETRY_FIRST_DELAY
        while True:
            try:
                return await database_sync_to_async(self._store_end)(fields)
            except DATABASE_UNREACHABLE as error:
                note_database_trouble()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                log.warning(
                    "could not store the end of turn %s (%s); trying again in %.1f s",
                    self.turn_id,
                    str(error).strip() or type(error).__name__,
                    min(delay, left),
                )
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, FINISH_RETRY_MAX_DELAY)

    def _store_end(self, fields: dict) -> str:
        """Store the end of the turn and its usage record in one transaction (a retry after a
        failure that left it unclear whether the commit happened never counts twice); return
        the finished turn's fragment, rendered once for every viewer ("" when nothing of this
        runner's was stored: sockets render what is)."""
        turn = self.plan.turn
        for name, value in fields.items():
            setattr(turn, name, value)
        with transaction.atomic():
            stored = Turn.objects.filter(pk=self.turn_id, status__in=Turn.ACTIVE).update(
                **fields, runner_channel=""
            )
            if stored:
                # Also while paused for a tool answer: those tokens are spent even if nobody
                # answers (record_turn records only what is new when the turn resumes).
                usage.record_turn(turn)
            elif Turn.objects.filter(pk=self.turn_id, status=Turn.Status.INTERRUPTED).update(
                **fields, runner_channel=""
            ):
                # Closed from its last checkpoint by a worker that took this runner for dead:
                # the whole answer replaces that, and only usage not recorded yet is added.
                usage.record_turn(turn, recount=True)
            elif not Turn.objects.filter(pk=self.turn_id).exists():
                # Deleted with its thread meanwhile: the tokens were spent all the same.
                earlier = asdict(self.usage_at_start) if self.resuming else None
                usage.record_turn(turn, deleted=True, recorded=earlier)
                return ""
            else:
                return ""  # stored by an earlier attempt whose reply was lost
        try:
            return fragments.finished_turn(turn, self.plan.siblings)
        except Exception:
            log.exception("could not render the end of turn %s", self.turn_id)
            return ""


# -- entry points used by views and consumers ----------------------------------------------------


def _request_for(turn: Turn, thread: Thread, path: list[Turn], user) -> RequestPlan:
    """What every upstream request of ``turn`` is built from (its first, and after tools)."""
    return RequestPlan(
        api=turn.api,
        model=turn.model,
        params=turn.params,
        path=path,
        user_text=turn.user_text,
        user_tag=parameters.user_identifier(user.pk, settings.SECRET_KEY),
        tools={
            tool.name: tool_loop.ToolSpec(
                tool.name, tool.description, tool.parameters, tool.builtin
            )
            for tool in thread.tools.all()
        },
    )


def _plan_turn(
    user, thread_id: int, text: str, parent_id: int | None, branch: bool, channel: str
) -> TurnPlan:
    """Create the turn: after the current turn, or (``branch``) as a new child of ``parent_id``.
    Its runner will listen on ``channel``."""
    with transaction.atomic():
        thread = conversation.writable_thread_for(user, thread_id)
        if thread is None:
            raise conversation.TurnRejected("This chat no longer exists.")
        text = conversation.validate_message(text, settings.MAX_MESSAGE_CHARS)
        # All the thread's turns in one query: whether one is busy, the path to continue and
        # the new turn's siblings.
        tree = conversation.ThreadTree(thread)
        if any(turn.status in Turn.ACTIVE for turn in tree.turns.values()):
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
        defaults = usage.check_allowed(user, provider, thread.model)
        leaf = parent_id if branch else thread.current_turn_id
        path = tree.path(leaf) if leaf is not None else []
        if branch and parent_id is not None and not path:
            raise conversation.TurnRejected("This message no longer exists.")
        api = conversation.api_for(thread, provider)
        # Staff-set defaults for the model, overridden by what the user set on the thread.
        params = {**defaults, **thread.params}
        turn = Turn.objects.create(
            thread=thread,
            parent=path[-1] if path else None,
            author=user,
            user_text=text,
            api=api,
            provider=provider,
            model=thread.model,
            params=params,
            runner_channel=channel,
            heartbeat_at=timezone.now(),
        )
        linear = thread.current_turn_id == (path[-1].pk if path else None)
        thread.current_turn = turn
        if not path and not branch:
            thread.title = conversation.title_from(text)
        thread.save(update_fields=["current_turn", "title", "updated_at"])
        tree.turns[turn.pk] = turn
        tree.children.setdefault(turn.parent_id, []).append(turn)
        request = _request_for(turn, thread, path, user)
        return TurnPlan(turn, provider, request, linear, tree.siblings(turn))


async def _launch(plan: TurnPlan, state: StreamState | None = None) -> Turn:
    ensure_reaper()
    runner = TurnRunner(plan, state)
    _running[plan.turn.pk] = runner
    # The upstream request starts now; the new turn's fragment is rendered meanwhile, once for
    # every socket, and its first delta waits until the sockets have it.
    runner.announced.clear()
    runner.start()
    await _announce(runner)  # in the caller's context: its thread-sensitive executor renders
    return plan.turn


async def _announce(runner: TurnRunner) -> None:
    """Tell the thread's sockets about a new turn, with its fragment when it continues the
    path on screen; then (whatever happens) let the runner publish."""
    plan = runner.plan
    message = {"type": "turn.created", "turn_id": plan.turn.pk, "linear": plan.linear}
    try:
        if plan.linear:
            snapshot = runner.snapshot()  # empty: nothing is published before the announcement
            try:
                message["html"] = await database_sync_to_async(fragments.appended_turn)(
                    plan.turn, snapshot, plan.siblings
                )
            except Exception:
                log.exception("could not render the new turn %s", plan.turn.pk)  # sockets will
        await get_channel_layer().group_send(thread_group(plan.turn.thread_id), message)
    except ChannelLayerUnavailable:  # the turn runs; sockets catch up when Redis is back
        log.warning("could not announce turn %s", plan.turn.pk)
    finally:
        runner.announced.set()


def _refuse_while_shutting_down() -> None:
    if not accepting_turns:
        raise conversation.TurnRejected("This server is restarting. Send again in a moment.")


async def start_turn(user, thread_id: int, text: str) -> Turn:
    """Send a message at the end of the thread's current path. Raises TurnRejected."""
    _refuse_while_shutting_down()
    channel = _new_runner_channel()
    plan = await database_sync_to_async(_plan_turn)(user, thread_id, text, None, False, channel)
    return await _launch(plan)


async def start_new_thread(user, create_thread: Callable[[], Thread], text: str) -> Turn:
    """The first message of a new chat: ``create_thread()`` and the first turn are created in
    one transaction, so a refused turn (quota, rate limit, empty message…) leaves no empty chat
    behind. Raises TurnRejected."""
    channel = _new_runner_channel()

    def plan() -> TurnPlan:
        with transaction.atomic():
            thread = create_thread()
            return _plan_turn(user, thread.pk, text, None, False, channel)

    return await _launch(await database_sync_to_async(plan)())


async def branch_turn(user, turn_id: int, text: str | None = None) -> Turn:
    """A new sibling of ``turn_id``: the same message asked again (regenerate, retry), or an
    edited one. The new branch becomes the visible path. Raises TurnRejected."""
    _refuse_while_shutting_down()
    channel = _new_runner_channel()

    def plan() -> TurnPlan:
        turn = Turn.objects.filter(pk=turn_id).only("thread_id", "parent_id", "user_text").first()
        if turn is None or conversation.thread_for(user, turn.thread_id) is None:
            raise conversation.TurnRejected("This message no longer exists.")
        message = turn.user_text if text is None else text
        return _plan_turn(user, turn.thread_id, message, turn.parent_id, True, channel)

    return await _launch(await database_sync_to_async(plan)())


async def answer_tool_call(user, turn_id: int, call_id: str, result: str | None) -> None:
    """The user's result for a call (``None`` rejects it); resumes the turn once all are in."""
    _refuse_while_shutting_down()
    channel = _new_runner_channel()

    def record() -> TurnPlan | None:
        with transaction.atomic():
            turn = Turn.objects.select_for_update().filter(pk=turn_id).first()
            thread = conversation.writable_thread_for(user, turn.thread_id) if turn else None
            if thread is None:
                raise conversation.TurnRejected("This message no longer exists.")
            if turn.status != Turn.Status.AWAITING_TOOL:
                raise conversation.TurnRejected("This tool call was already answered.")
            step = tool_loop.last_step(turn.tool_calls)
            call = next((c for c in step if c["call_id"] == call_id), None)
            if call is None or call["status"] != "awaiting":
                raise conversation.TurnRejected("This tool call was already answered.")
            if result is not None and len(result) > settings.MAX_MESSAGE_CHARS:
                raise conversation.TurnRejected("That result is too long.")
            tool_loop.answer(call, result)
            if any(c["status"] == "awaiting" for c in step):
                turn.save(update_fields=["tool_calls"])
                return None
            turn.status = Turn.Status.IN_PROGRESS
            turn.runner_channel, turn.heartbeat_at = channel, timezone.now()
            turn.save(update_fields=["tool_calls", "status", "runner_channel", "heartbeat_at"])
            tree = conversation.ThreadTree(thread)
            path = tree.path(turn.parent_id) if turn.parent_id else []
            request = _request_for(turn, thread, path, user)
            provider = turn.provider or default_provider()
            return TurnPlan(turn=turn, provider=provider, request=request)

    plan = await database_sync_to_async(record)()
    if plan is None:
        await _publish_update(turn_id)
        return
    runner = TurnRunner(plan, StreamState.resumed(plan.turn))
    _running[turn_id] = runner
    # Pages show the paused turn without a live answer (no offset marker to update): each
    # socket must redraw it live (``turn.updated``) before the resumed turn's first delta.
    runner.announced.clear()
    runner.start()
    try:
        await _publish_update(turn_id)
    finally:
        runner.announced.set()


async def _publish_update(turn_id: int, kind: str = "turn.updated") -> None:
    thread_id = await database_sync_to_async(Turn.objects.values_list("thread_id", flat=True).get)(
        pk=turn_id
    )
    await get_channel_layer().group_send(
        thread_group(thread_id), {"type": kind, "turn_id": turn_id}
    )


def cancel_running(turn_id: int) -> bool:
    """Stop a turn generating in this process; its partial answer is kept, marked stopped."""
    runner = _running.get(turn_id)
    if runner is None:
        return False
    runner.stop()
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
    send = async_to_sync(get_channel_layer().send)
    for channel in channels:
        try:
            send(channel, {"type": "turn.stop"})
        except Exception:  # the deletion stands; the runner's next checkpoint stops it
            log.exception("could not tell runner %s to stop", channel)


async def stop_turn(turn_id: int) -> bool:
    """Stop a turn that is generating (on whichever worker) or waiting for a tool answer."""
    if cancel_running(turn_id):
        return True
    turn = await Turn.objects.filter(pk=turn_id).values("status", "runner_channel").afirst()
    if turn is None:
        return False
    if turn["status"] == Turn.Status.IN_PROGRESS and turn["runner_channel"]:
        await get_channel_layer().send(turn["runner_channel"], {"type": "turn.stop"})
        return True
    # A turn paused for a tool answer has no runner: stopping it just ends it.
    stopped = await Turn.objects.filter(pk=turn_id, status=Turn.Status.AWAITING_TOOL).aupdate(
        status=Turn.Status.CANCELLED, finished_at=timezone.now()
    )
    if stopped:
        await _publish_update(turn_id, "turn.finished")
    return bool(stopped)


def running_snapshot(turn_id: int) -> dict | None:
    """The live state of a turn running in this process (None when it runs elsewhere)."""
    runner = _running.get(turn_id)
    return runner.snapshot() if runner else None


def running_snapshots() -> dict[int, dict]:
    """Snapshots of every turn running in this process, by turn id."""
    return {turn_id: runner.snapshot() for turn_id, runner in list(_running.items())}


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
    await get_channel_layer().send(channel, {"type": "snapshot.request", "reply_to": reply_to})
    return True


async def finish_running_turns(grace: float, store_within: float) -> tuple[int, int]:
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


async def wait_for(turn_id: int) -> None:
    """Wait until a turn running in this process has finished (or paused) and been stored."""
    runner = _running.get(turn_id)
    if runner is not None and runner.task is not None:
        await asyncio.shield(runner.task)


def mark_interrupted_turns(older_than: float | None = None) -> list[tuple[int, int]]:
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
    if not dead or not heartbeats_are_trustworthy():
        return []
    restore_mirrored_text([pk for pk, _ in dead])
    return [(pk, thread_id) for pk, thread_id in dead if _close_dead_turn(pk, is_stale)]


def _close_dead_turn(turn_id: int, is_stale: Q) -> bool:
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


async def reap_stale_turns() -> int:
    """Mark dead workers' turns interrupted and show it to everyone viewing them."""
    found = await database_sync_to_async(mark_interrupted_turns)()
    layer = get_channel_layer()
    for turn_id, thread_id in found:
        await layer.group_send(
            thread_group(thread_id), {"type": "turn.finished", "turn_id": turn_id}
        )
    return len(found)


async def _reaper_loop() -> None:
    while True:
        await asyncio.sleep(settings.TURN_REAPER_SECONDS)
        try:
            reaped = await reap_stale_turns()
            if reaped:
                log.warning("marked %d turn(s) of a dead worker as interrupted", reaped)
        except DATABASE_UNREACHABLE:
            note_database_trouble()
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

"""Runs one turn: upstream → normalized events → stored turn + live updates (``chat.live``).

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
whose heartbeat goes stale (its worker died) is closed by the reaper (``registry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from chat import image_policy, live, log_context, loop_priority, metrics
from chat.channel_layer import ChannelLayerUnavailable
from chat.markdown import StreamingMarkdown, render_tail
from chat.models import Turn
from chat.services import fallbacks, refusals, titles, tool_loop, turn_mirror
from chat.services.mcp import calls as mcp_calls
from chat.services.turns import admission, choices, registry, store
from chat.services.turns.planning import TurnPlan
from chat.upstream import events

log = logging.getLogger(__name__)

# A streamed tail longer than this (one huge list, table or paragraph is one open block, parsed
# again at every flush) is rendered in a worker thread, not on the event loop that serves every
# socket of the worker. Shorter ones cost less than the thread hop (about a millisecond).
INLINE_RENDER_CHARS = 8_192
_RENDER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="markdown")
# After a flush that took t seconds the next waits at least this many times t: a tail that is
# slow to render is rendered less often, so it never takes more than a third of a core.
FLUSH_BACKOFF = 2.0


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
    usage: events.Usage = field(default_factory=events.Usage)
    status: str = Turn.Status.IN_PROGRESS
    error: str = ""
    first_token_at: float | None = None
    # Choices after the first (n > 1) and spoken answers: stored when the answer ends.
    other: choices.OtherOutput = field(default_factory=choices.OtherOutput)

    @property
    def has_output(self) -> bool:
        return bool(self.text or self.reasoning or self.tool_calls)

    def add_usage(self, step: events.Usage) -> None:
        """Tool-loop steps each report usage; the turn's is their sum."""
        self.usage = self.usage + step

    def saved_fields(self) -> dict[str, Any]:
        """What a checkpoint stores."""
        return {
            "output_text": "".join(self.text),
            "reasoning_text": "".join(self.reasoning),
            "tool_calls": self.tool_calls,
            **store.usage_fields(self.usage),
        }

    @classmethod
    def resumed(cls, turn: Turn) -> StreamState:
        """The state of a turn paused for a tool answer, to carry on from."""
        state = cls(
            response_id=turn.response_id,
            model=turn.model,
            tool_calls=list(turn.tool_calls),
            usage=events.Usage(
                turn.input_tokens,
                turn.output_tokens,
                turn.total_tokens,
                turn.cached_tokens,
                turn.reasoning_tokens,
                turn.image_tokens,
                turn.audio_tokens,
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
        self.thread_id = plan.turn.thread_id
        self.state = state or StreamState(model=plan.turn.model)
        self.resuming = state is not None
        # What earlier runners of this turn (a tool loop resumed) already recorded as usage.
        self.usage_at_start = self.state.usage
        self.stop_requested = False
        # Set once ``run`` began: a task cancelled before its first step never runs its body,
        # so the turn would stay "in progress" with no runner (``stop``).
        self.began = False
        # Set while the end of the turn is being stored: a stop then must not cancel that write.
        self.finishing = False
        # What the answer brought besides choice 0's text, stored with its end (``_finish``).
        self.extras: choices.Extras | None = None
        self.task: asyncio.Task[None] | None = None
        # Something to publish for the flush loop (tool steps, a resumed turn, a turn not yet
        # announced); while the upstream streams, the reading task publishes itself (``_pace``).
        self._dirty = asyncio.Event()
        self._unpublished = False  # what the last batch read changed, not yet published
        self._next_flush = 0.0  # time.monotonic() when the next delta may go out
        # Both may publish (a resumed turn's first delta while the answer streams on): one at
        # a time, since a delta takes the markdown's tail and commits it around an await. The
        # end of the turn waits for it too (``_stop_flushing``).
        self._publishing = asyncio.Lock()
        self._published_any = False
        # Set once the thread's sockets were told about the turn (``launch``): no delta may
        # reach them before the turn itself.
        self.announced = asyncio.Event()
        self.announced.set()
        self._channel_layer = get_channel_layer()
        self.mirror = turn_mirror.TextMirror(self.turn_id)
        # The language of the page that started the turn: what it renders once for every socket
        # (the end of the turn, tool cards) is in it; other pages re-render (live.shared_html).
        self.language = translation.get_language()

    # -- public -------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        # A fresh context: the task must not inherit the request's thread-sensitive executor,
        # which asgiref shuts down when that request ends (the turn outlives it). Its first
        # step (the request written to the gateway) runs as soon as the caller yields, not
        # behind the running streams' queued work.
        with loop_priority.ahead_of_queued_work():
            self.task = asyncio.get_running_loop().create_task(
                self.run(), name=f"turn-{self.turn_id}", context=contextvars.Context()
            )
        return self.task

    def stop(self) -> None:
        self.stop_requested = True
        # One not begun yet stops as it begins (``run``).
        if self.task is not None and self.began and not self.finishing:
            self.task.cancel()

    def snapshot(self) -> live.Snapshot:
        """The answer so far, in the shape of a delta message starting at block 0."""
        state = self.state
        return live.snapshot(
            self.turn_id,
            blocks=state.answer.blocks,
            tail=state.answer.tail_html,
            reasoning_blocks=state.thoughts.blocks,
            reasoning_tail=state.thoughts.tail_html,
            tool_calls=state.tool_calls,
        )

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.began = True
        log_context.bind(turn_id=self.turn_id, user_id=self.plan.turn.author_id)
        translation.activate(self.language)
        started = time.monotonic()
        helpers = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._checkpoint_loop()),
            asyncio.create_task(self._control_loop()),
        ]
        if self.resuming:
            self._dirty.set()
        try:
            if self.stop_requested:  # stopped before it began
                raise asyncio.CancelledError
            # In a saturated process the turn first waits for a place (shown to its viewers).
            await admission.run_admitted(
                self.turn_id, self.thread_id, self.announced, lambda: self._consume(started)
            )
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
            self.state.status = (
                Turn.Status.CANCELLED if self.stop_requested else Turn.Status.INTERRUPTED
            )
            if not self.stop_requested:
                self.state.error = _("The server restarted before this answer finished.")
        except Exception:
            log.exception("turn %s failed inside Switchboard", self.turn_id)
            self.state.status = Turn.Status.FAILED
            self.state.error = _("Switchboard hit an internal error while generating this answer.")
        finally:
            self.finishing = True
            await self._stop_flushing(helpers[0])
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._finish(time.monotonic() - started, started)
            metrics.turn_finished(self.plan.provider, self.state, started, resumed=self.resuming)
            registry.forget(self.turn_id)

    async def _consume(self, started: float) -> None:
        request = self.plan.request
        await request.load_files()  # the conversation's attached files, read off the loop
        if self.resuming:
            await self._run_mcp_calls(tool_loop.last_step(self.state.tool_calls))  # approved
            api, body = request.after_tools(self.state.tool_calls, self.state.response_id)
        else:
            api, body = request.first()
        steps = len({call["step"] for call in self.state.tool_calls})
        retried_with_history = False
        while True:
            self.state.status = Turn.Status.IN_PROGRESS
            failure, calls = await self._stream_step(api, body, started, steps + 1)
            if failure is not None:
                metrics.upstream_failed(self.plan.provider, failure)
                if (
                    failure.unknown_previous_response
                    and not retried_with_history
                    and not self.state.has_output
                ):
                    # The upstream forgot the previous response: resend the whole path, once.
                    retried_with_history = True
                    await request.load_files(whole_history=True)
                    api, body = request.first(full_history=True)
                    continue
                self.state.status = Turn.Status.FAILED
                self.state.error = refusals.explain_upstream_failure(failure)
                return
            if self.state.status == Turn.Status.IN_PROGRESS:
                self.state.status = Turn.Status.FAILED
                self.state.error = _("The gateway ended the answer without saying it was complete.")
                return
            if not calls:
                return
            steps += 1
            if not await tool_loop.execute(calls, request.tools) and not (
                await self._run_mcp_calls(calls)
            ):
                self.state.status = Turn.Status.AWAITING_TOOL
                self.state.tools_changed = True
                return
            self.state.tools_changed = True
            self._dirty.set()
            if steps >= settings.TOOL_MAX_STEPS:
                self.state.status = Turn.Status.INCOMPLETE
                self.state.error = _(
                    "Stopped after %(steps)s tool steps without a final answer."
                ) % {"steps": steps}
                return
            api, body = request.after_tools(self.state.tool_calls, self.state.response_id)

    async def _run_mcp_calls(self, calls: list[dict[str, Any]]) -> bool:
        """The step's MCP calls (chat/services/mcp/calls.py); True when none waits any more."""

        def changed() -> None:
            self.state.tools_changed = True
            self._dirty.set()

        return await mcp_calls.run_calls(
            calls,
            self.plan.request.tools,
            api=self.plan.request.api,
            user_id=self.plan.turn.author_id,
            turn_id=self.turn_id,
            changed=changed,
        )

    async def _stream_step(
        self, api: str, body: dict, started: float, step: int
    ) -> tuple[events.Failed | None, list[dict[str, Any]]]:
        """Stream one upstream request; returns its failure, if any, and the calls it made."""
        # The model's fallback chain: another model when this one fails before answering.
        stream = fallbacks.stream_event_batches(self.plan.provider, api, body)
        calls: dict[int, dict[str, Any]] = {}
        async with contextlib.aclosing(stream) as upstream:
            async for batch in upstream:
                for event in batch:
                    if isinstance(event, events.Failed):
                        return event, []
                    if isinstance(event, events.ToolCallDelta | events.ToolCallDone):
                        self._apply_tool_event(event, calls, step)
                    else:
                        self._apply(event)
                await self._pace()
        return None, list(calls.values())

    async def _pace(self) -> None:
        """Publish what the batch just read changed, then wait for the next coalescing window
        before reading on: what the gateway sends meanwhile waits in the socket and is read in
        one go (one wake-up and one batch per window, not per chunk). The first delta goes out
        as soon as it is read; a stop cancels the wait at once."""
        if self._unpublished:
            if not self.announced.is_set():
                self._unpublished = False
                self._dirty.set()  # the flush loop publishes once the turn is announced
                return
            await _until(self._next_flush)
            await self._publish_now()
        await _until(self._next_flush)

    def _apply(self, event: events.Event) -> None:
        state = self.state
        if isinstance(event, events.TextDelta | events.ReasoningDelta):
            if state.first_token_at is None:
                state.first_token_at = time.monotonic()
            if isinstance(event, events.TextDelta):
                state.text.append(event.text)
                state.answer.append(event.text)
            else:
                state.reasoning.append(event.text)
                state.thoughts.append(event.text)
            self._unpublished = True
        elif isinstance(event, events.ChoiceDelta | events.AudioDelta):
            state.other.add(event)
        elif isinstance(event, events.Started):
            state.response_id = event.response_id or state.response_id
            state.model = event.model or state.model
        elif isinstance(event, events.Usage):
            state.add_usage(event)
        elif isinstance(event, events.Completed):
            state.response_id = event.response_id or state.response_id
            state.status = (
                Turn.Status.INCOMPLETE if event.status == "incomplete" else Turn.Status.COMPLETED
            )
            if event.reason:
                state.error = _("The answer stopped early (%(reason)s).") % {
                    "reason": event.reason.replace("_", " ")
                }

    def _apply_tool_event(
        self,
        event: events.ToolCallDelta | events.ToolCallDone,
        calls: dict[int, dict[str, Any]],
        step: int,
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
        if isinstance(event, events.ToolCallDone):
            call.update(call_id=event.call_id, name=event.name, arguments=event.arguments)
        else:
            call["call_id"] = event.call_id or call["call_id"]
            call["name"] = event.name or call["name"]
            call["arguments"] += event.arguments_delta
        self.state.tools_changed = True
        self._unpublished = True

    # -- publishing and storing ---------------------------------------------------------------

    async def _flush_loop(self) -> None:
        # The first delta goes out at once (time to first token); later ones at most once a window.
        while True:
            await self._dirty.wait()
            await self.announced.wait()
            await _until(self._next_flush)
            if self._dirty.is_set():  # else the reading task published it meanwhile
                await self._publish_now()

    async def _publish_now(self) -> None:
        """Publish the answer's change and open the next window (later for a slow render)."""
        async with self._publishing:
            self._dirty.clear()
            self._unpublished = False
            began = time.monotonic()
            try:
                await self._publish_delta()
            except ChannelLayerUnavailable:
                # Redis is down for longer than a send waits: the turn goes on; sockets see
                # the gap at the next delta (or reconnect) and ask for the whole answer.
                log.warning("could not publish a delta of turn %s", self.turn_id)
        done = time.monotonic()
        took = done - began
        self._next_flush = done + max(settings.STREAM_COALESCE_SECONDS, FLUSH_BACKOFF * took)

    async def _stop_flushing(self, flush: asyncio.Task[None]) -> None:
        """End the flush loop without losing its delta in flight: with Redis a publish takes
        round trips, and a short answer may end meanwhile (cancelled, its first text would
        reach the sockets only with the end, after the end's database write, which queues
        behind other work in the database thread). An answer that ended before any delta
        went out publishes it here, for the same reason (once its sockets know the turn: nor
        may the end overtake ``turn.created``)."""
        await self.announced.wait()
        async with self._publishing:
            flush.cancel()
            if self._published_any or not (self._dirty.is_set() or self._unpublished):
                return
            try:
                await self._publish_delta()
            except Exception:  # the end, published next, carries the whole answer anyway
                log.warning("could not publish the last delta of turn %s", self.turn_id)

    async def _render_tails(self) -> tuple:
        """Each open tail's render: appended without parsing where only plain text was added
        (``StreamingMarkdown.appended``), else parsed (a long one in a worker thread)."""
        texts, rendered = [], []
        for markdown in (self.state.answer, self.state.thoughts):
            text = markdown.take()
            texts.append(text)
            rendered.append(None if text is None else markdown.appended(text))
        parse = sum(len(t) for t, done in zip(texts, rendered, strict=True) if t and not done)
        if not parse:
            return tuple(rendered)
        images = image_policy.current()  # on the loop: the cached list, never a query

        def render() -> tuple:
            return tuple(
                done if done is not None or text is None else render_tail(text, images)
                for text, done in zip(texts, rendered, strict=True)
            )

        if parse > INLINE_RENDER_CHARS:
            return await asyncio.get_running_loop().run_in_executor(_RENDER_POOL, render)
        return render()

    async def _publish_delta(self) -> None:
        state = self.state
        answer_start, thoughts_start = len(state.answer.blocks), len(state.thoughts.blocks)
        rendered = await self._render_tails()
        blocks, tail = state.answer.commit(rendered[0])
        reasoning_blocks, reasoning_tail = state.thoughts.commit(rendered[1])
        piece = live.Snapshot(
            turn_id=self.turn_id,
            start=answer_start,
            blocks=blocks,
            tail=tail,
            reasoning_start=thoughts_start,
            reasoning_blocks=reasoning_blocks,
            reasoning_tail=reasoning_tail,
        )
        changed_tools = state.tool_calls if state.tools_changed else None
        state.tools_changed = False
        message = live.delta(piece, tool_calls=changed_tools)
        # Mirrored before it is shown: a dead worker's turn is then stored with what was seen.
        await self.mirror.write(state.text, state.reasoning)
        await live.publish(self.thread_id, message, layer=self._channel_layer)
        self._published_any = True

    async def _checkpoint_loop(self) -> None:
        # On a timer, not per event: the heartbeat must go on while the upstream is silent.
        while True:
            await asyncio.sleep(settings.STREAM_CHECKPOINT_SECONDS)
            try:
                await self._checkpoint()
            except store.DATABASE_UNREACHABLE:
                store.note_database_trouble()
                log.warning("could not checkpoint turn %s: database unreachable", self.turn_id)
            except Exception:
                log.exception("could not checkpoint turn %s", self.turn_id)

    async def _checkpoint(self) -> None:
        """Save the answer so far and its usage and say this runner is alive. A turn deleted
        meanwhile (its thread, from any worker or the shell) is stopped."""
        saved = await database_sync_to_async(store.checkpoint)(
            self.turn_id, self.state.saved_fields()
        )
        if not saved and not await Turn.objects.filter(pk=self.turn_id).aexists():
            self.stop()

    async def _control_loop(self) -> None:
        """Stop and snapshot requests from sockets on any worker."""
        while True:
            message = await self._channel_layer.receive(self.plan.channel)
            kind = message.get("type")
            if kind == "turn.stop":
                self.stop()
            elif kind == "snapshot.request":
                reply = live.TurnSnapshot(type="turn.snapshot", **self.snapshot())
                with contextlib.suppress(Exception):  # the asking socket may be gone
                    await live.send(message["reply_to"], reply, layer=self._channel_layer)

    async def _finish(self, elapsed: float, started: float) -> None:
        state, first = self.state, self.state.first_token_at
        fields = {
            **state.saved_fields(),
            "status": state.status,
            "error": state.error,
            "response_id": state.response_id,
            "model": state.model,
            "duration_ms": (self.plan.turn.duration_ms or 0) + round(elapsed * 1000),
            "finished_at": timezone.now(),
        }
        if not self.resuming:
            fields["time_to_first_token_ms"] = round((first - started) * 1000) if first else None
        self.extras = choices.Extras.of(self.plan.turn, state.other, fields)
        if self.extras is not None and state.other.audio:
            # Written before the transaction that stores the end: no lock held meanwhile.
            await asyncio.to_thread(self.extras.write_audio)
        try:
            message = await store.retry_while_unreachable(
                lambda: database_sync_to_async(self._store_end)(fields),
                what=f"the end of turn {self.turn_id}",
            )
        except Exception:
            # The turn stays as its last checkpoint said; a reaper closes it (and records its
            # usage) once the database has answered again for a while.
            log.exception("could not store the end of turn %s", self.turn_id)
            return
        try:
            await live.publish(self.thread_id, message, layer=self._channel_layer)
        except ChannelLayerUnavailable:  # they fetch the stored turn when Redis is back
            log.warning("could not tell turn %s's viewers it ended", self.turn_id)
        titles.schedule_after(self.plan.turn)  # a first answer: a model titles the chat

    def _store_end(self, fields: dict) -> live.TurnFinished:
        """Store the end of the turn; the message telling its viewers, with the finished turn
        rendered once for all of them (without it when nothing of this runner's was stored:
        sockets render what is). New sibling choices change the switcher: counted again."""
        earlier = self.usage_at_start if self.resuming else None
        extras = self.extras
        store_extras = extras.store if extras is not None else None
        if store.store_end(self.plan.turn, fields, earlier_usage=earlier, extras=store_extras):
            siblings = None if extras is not None and extras.adds_turns else self.plan.siblings
            return live.finished(self.plan.turn, siblings=siblings, log=log)
        return live.TurnFinished(type="turn.finished", turn_id=self.turn_id)


async def _until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment`` (no wait, no yield, if it has)."""
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)

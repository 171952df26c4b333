"""The thread websocket: authorize, join the thread's group, forward. No product logic here."""

from __future__ import annotations

import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chat import fragments
from chat.models import Turn
from chat.services import conversation, generation

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ThreadConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.thread_id = int(self.scope["url_route"]["kwargs"]["thread_id"])
        thread = await database_sync_to_async(conversation.thread_for)(user, self.thread_id)
        if thread is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # How many finished blocks of each running turn this socket has shown.
        self.known: dict[int, tuple[int, int]] = {}
        self.group = generation.thread_group(self.thread_id)
        # Join before taking snapshots: a delta published in between is then trimmed, not lost.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        for turn_id in await self._running_turn_ids():
            await self.turn_updated({"turn_id": turn_id})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = json.loads(text_data or "")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            await self.send(
                fragments.error_notice("The message could not be read. Reload the page.")
            )
            return
        user = self.scope["user"]
        action = data.get("action") or "send"
        try:
            if action == "send":
                await generation.start_turn(user, self.thread_id, str(data.get("message", "")))
            elif action == "stop":
                await self._stop(data.get("turn_id"))
            elif action in ("retry", "regenerate"):
                await generation.branch_turn(user, await self._own_turn_id(data))
            elif action == "edit":
                await generation.branch_turn(
                    user, await self._own_turn_id(data), str(data.get("message", ""))
                )
            elif action in ("tool_result", "tool_reject"):
                result = str(data.get("result", "")) if action == "tool_result" else None
                await generation.answer_tool_call(
                    user, await self._own_turn_id(data), str(data.get("call_id", "")), result
                )
            elif action == "switch":
                await self._switch(await self._own_turn_id(data))
            else:
                raise ValueError(action)
            await self.send(fragments.error_notice(""))
        except conversation.TurnRejected as exc:
            await self.send(fragments.error_notice(str(exc)))
        except (TypeError, ValueError):
            await self.send(fragments.error_notice("That request was not understood."))

    async def _own_turn_id(self, data: dict) -> int:
        """The turn named in a request, if it belongs to this socket's thread."""
        turn_id = int(data.get("turn_id") or 0)
        if not await Turn.objects.filter(pk=turn_id, thread_id=self.thread_id).aexists():
            raise conversation.TurnRejected("This message no longer exists.")
        return turn_id

    async def _stop(self, turn_id: object) -> None:
        """Stop the named turn, or (the Stop button) whatever is generating in this thread."""
        turn_ids = [await self._own_turn_id({"turn_id": turn_id})] if turn_id else None
        for pk in turn_ids or await self._running_turn_ids(include_paused=True):
            await generation.stop_turn(pk)

    async def _switch(self, turn_id: int) -> None:
        thread = await database_sync_to_async(conversation.thread_for)(
            self.scope["user"], self.thread_id
        )
        if thread is None or not await database_sync_to_async(conversation.switch_branch)(
            thread, turn_id
        ):
            raise conversation.TurnRejected("This message no longer exists.")
        await self.channel_layer.group_send(self.group, {"type": "path.changed"})

    # -- group messages ---------------------------------------------------------------------

    async def turn_created(self, message: dict) -> None:
        turn_id = message["turn_id"]
        snapshot = generation.running_snapshot(turn_id)
        self._remember(snapshot)
        if message.get("linear", True):
            html = await self._render(lambda turn: fragments.appended_turn(turn, snapshot), turn_id)
        else:
            html = await self._render_path({turn_id: snapshot} if snapshot else {})
        if html:
            await self.send(html)

    async def turn_delta(self, message: dict) -> None:
        turn_id = message["turn_id"]
        known_blocks, known_reasoning = self.known.get(turn_id, (0, 0))
        if message["start"] > known_blocks or message["reasoning_start"] > known_reasoning:
            # A delta was dropped (slow socket): resend the whole answer so far instead.
            await self.turn_updated(message)
            return
        await self.send(fragments.delta(message, known_blocks, known_reasoning))
        self.known[turn_id] = (
            message["start"] + len(message["blocks"]),
            message["reasoning_start"] + len(message["reasoning_blocks"]),
        )

    async def turn_updated(self, message: dict) -> None:
        """Replace a turn with its current state (live snapshot when it is running)."""
        snapshot = generation.running_snapshot(message["turn_id"])
        self._remember(snapshot)
        html = await self._render(
            lambda turn: fragments.replaced_turn(turn, snapshot), message["turn_id"]
        )
        if html:
            await self.send(html)

    async def turn_finished(self, message: dict) -> None:
        self.known.pop(message["turn_id"], None)

        def finished(turn: Turn) -> str:
            announce = f"Answer {turn.get_status_display().lower()}." if turn.is_finished else ""
            return fragments.replaced_turn(turn, announce=announce)

        html = await self._render(finished, message["turn_id"])
        if html:
            await self.send(html)

    async def path_changed(self, message: dict) -> None:
        snapshots = generation.running_snapshots()
        for snapshot in snapshots.values():
            self._remember(snapshot)
        await self.send(await self._render_path(snapshots))

    # -- helpers --------------------------------------------------------------------------------

    def _remember(self, snapshot: dict | None) -> None:
        if snapshot is not None:
            self.known[snapshot["turn_id"]] = (
                len(snapshot["blocks"]),
                len(snapshot["reasoning_blocks"]),
            )

    @database_sync_to_async
    def _render(self, render, turn_id: int) -> str:
        turn = (
            Turn.objects.select_related("thread")
            .filter(pk=turn_id, thread_id=self.thread_id)
            .first()
        )
        return render(turn) if turn is not None else ""

    @database_sync_to_async
    def _render_path(self, snapshots: dict[int, dict]) -> str:
        thread = conversation.thread_for(self.scope["user"], self.thread_id)
        if thread is None:
            return fragments.error_notice("This chat no longer exists.")
        busy = thread.turns.filter(status__in=Turn.ACTIVE).exists()
        return fragments.turn_list(thread, snapshots) + fragments.composer_state(busy=busy)

    @database_sync_to_async
    def _running_turn_ids(self, include_paused: bool = False) -> list[int]:
        statuses = Turn.ACTIVE if include_paused else [Turn.Status.IN_PROGRESS]
        return list(
            Turn.objects.filter(thread_id=self.thread_id, status__in=statuses).values_list(
                "pk", flat=True
            )
        )

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
        for turn in await self._running_turns():
            await self._send_snapshot(turn)

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
        action = data.get("action") or "send"
        try:
            if action == "send":
                await generation.start_turn(
                    self.scope["user"], self.thread_id, str(data.get("message", ""))
                )
                await self.send(fragments.error_notice(""))
            elif action == "stop":
                await self._stop(data.get("turn_id"))
            elif action == "retry":
                await generation.retry_turn(self.scope["user"], int(data.get("turn_id", 0)))
        except conversation.TurnRejected as exc:
            await self.send(fragments.error_notice(str(exc)))
        except (TypeError, ValueError):
            await self.send(fragments.error_notice("That request was not understood."))

    async def _stop(self, turn_id: object) -> None:
        """Stop the named turn, or (the Stop button) whatever is generating in this thread."""
        if turn_id:
            turn = await self._turn(int(turn_id))
            turns = [turn] if turn is not None else []
        else:
            turns = await self._running_turns()
        for turn in turns:
            generation.stop_turn(turn.pk)

    # -- group messages ---------------------------------------------------------------------

    async def turn_created(self, message: dict) -> None:
        turn = await self._turn(message["turn_id"])
        if turn is not None:
            snapshot = generation.running_snapshot(turn.pk)
            self._remember(snapshot)
            await self.send(fragments.appended_turn(turn, snapshot))

    async def turn_delta(self, message: dict) -> None:
        turn_id = message["turn_id"]
        known_blocks, known_reasoning = self.known.get(turn_id, (0, 0))
        if message["start"] > known_blocks or message["reasoning_start"] > known_reasoning:
            # A delta was dropped (slow socket): resend the whole answer so far instead.
            turn = await self._turn(turn_id)
            if turn is not None:
                await self._send_snapshot(turn)
            return
        await self.send(fragments.delta(message, known_blocks, known_reasoning))
        self.known[turn_id] = (
            message["start"] + len(message["blocks"]),
            message["reasoning_start"] + len(message["reasoning_blocks"]),
        )

    async def turn_finished(self, message: dict) -> None:
        self.known.pop(message["turn_id"], None)
        turn = await self._turn(message["turn_id"])
        if turn is not None:
            await self.send(
                fragments.replaced_turn(
                    turn, announce=f"Answer {turn.get_status_display().lower()}."
                )
            )

    # -- helpers --------------------------------------------------------------------------------

    async def _send_snapshot(self, turn: Turn) -> None:
        snapshot = generation.running_snapshot(turn.pk)
        self._remember(snapshot)
        await self.send(fragments.replaced_turn(turn, snapshot))

    def _remember(self, snapshot: dict | None) -> None:
        if snapshot is not None:
            self.known[snapshot["turn_id"]] = (
                len(snapshot["blocks"]),
                len(snapshot["reasoning_blocks"]),
            )

    @database_sync_to_async
    def _turn(self, turn_id: int) -> Turn | None:
        return Turn.objects.filter(pk=turn_id, thread_id=self.thread_id).first()

    @database_sync_to_async
    def _running_turns(self) -> list[Turn]:
        return list(Turn.objects.filter(thread_id=self.thread_id, status=Turn.Status.IN_PROGRESS))

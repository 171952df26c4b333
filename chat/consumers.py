"""The thread websocket: authorize, join the thread's group, forward. No product logic here:
actions go to ``chat.services.turns.launch``/``registry``; the live-turn messages, and what this
socket holds of each running answer, are defined in ``chat.live``.

A socket may be on another worker than the turn it shows: live state then comes from the
runner over the channel layer (``turn.snapshot`` replies), never from this process's memory.

A socket is bound to the login session that opened it (``chat.services.session_binding``): it
closes when that session ends, and every action re-checks the session and the thread's access.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable

from channels.consumer import get_handler_name
from channels.db import aclose_old_connections, database_sync_to_async
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from chat import fragments, languages, live, live_local, metrics, ws_actions
from chat.channel_layer import ChannelLayerUnavailable
from chat.models import Thread, Turn
from chat.request_ids import parse_id
from chat.services import (
    announcements,
    compare,
    conversation,
    permissions,
    refusals,
    session_binding,
    titles,
    turn_mirror,
)
from chat.services.attachments import linking as attachment_linking
from chat.services.turns import admission, launch, registry
from chat.socket_loop import OneWaitConsumer

log = logging.getLogger(__name__)

# Codes of the 4000 range: the htmx websocket extension does not reconnect after them.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# The extension reconnects after this one (with the browser's current session cookie).
CLOSE_RECONNECT = 1012


class ThreadConsumer(OneWaitConsumer):
    # Group messages whose handlers never touch the database. Channels' ``dispatch`` runs
    # ``close_old_connections`` in a worker thread before *every* handler: for the deltas of a
    # streaming answer (every socket, every coalescing window) that thread hop cost more than
    # the handler itself. Handlers here that may need the database call ``_db_ready`` first.
    # ``websocket.receive`` is here because ``receive`` closes old connections itself, in the
    # same hop as its session and access checks (``_may_still_act``); ``turn.created`` because
    # it usually carries its HTML, and the new turn's first delta queues behind it.
    _DATABASE_FREE = frozenset(
        {
            "turn.delta",
            "turn.created",
            "turn.waiting",
            "presence.join",
            "presence.here",
            "presence.leave",
            "websocket.receive",
        }
    )

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # Every message this socket handles goes through one ordered path (``live_local``):
        # what this process publishes for the thread comes straight from the publisher.
        self.in_order = live_local.InOrder(
            self._handle, self._deliver_now, contextvars.copy_context()
        )
        self.write_frame = live_local.frame_writer(send)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stop_following_locally()

    async def dispatch(self, message: dict) -> None:
        if live_local.own_reconnection(message, self.channel_layer):
            return  # its thread's relay says so too, in order with the thread's messages
        await self.in_order.dispatch(message)

    def deliver(self, message: dict) -> None:
        """A message of the thread published in this process (``live_local.deliver``)."""
        self.in_order.deliver(message)

    def _deliver_now(self, message: dict) -> bool:
        """Write a delta at once (no task, no coroutine), when this socket holds exactly what
        comes before it; anything else is handled as usual, in order."""
        if self.write_frame is None or message["type"] != "turn.delta" or self.ended:
            return False
        if not self.offsets.skips(message):
            if self.offsets.has_gap(message):
                return False
            self.write_frame(self.offsets.take_delta(message))
        return True

    async def _unfollow(self) -> None:
        """Nothing more of the thread reaches this socket."""
        self.in_order.close()
        await live_local.unfollow(self.channel_layer, self.group, self.thread_id, self)

    def _stop_following_locally(self) -> None:
        if hasattr(self, "thread_id"):
            live_local.abandon(self.thread_id, self)
        self.in_order.close()

    async def _handle(self, message: dict) -> None:
        if message.get("type") in self._DATABASE_FREE:
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        await super().dispatch(message)

    @staticmethod
    async def _db_ready() -> None:
        """What ``dispatch`` skips for database-free messages, for their rare database path."""
        await aclose_old_connections()

    async def connect(self) -> None:
        # Everything rendered for this socket (and by the turns it starts) is in its page's
        # language: the consumer's handlers all run in this task's context.
        translation.activate(languages.language_of_scope(self.scope))
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.thread_id = int(self.scope["url_route"]["kwargs"]["thread_id"])
        thread = await database_sync_to_async(permissions.thread_for)(user, self.thread_id)
        if thread is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.access = thread.access
        self.username = user.get_username()
        self.user_id = user.pk
        self.session_key = self.scope["session"].session_key
        self.session_tag = session_binding.session_tag(self.session_key)
        # Set once this socket was told to close: later messages find it gone.
        self.ended = False
        # What this socket shows of each running answer.
        self.offsets = live.SocketOffsets()
        # Who is viewing this thread: socket channel → username, on every worker.
        self.viewers: dict[str, str] = {self.channel_name: self.username}
        self.group = live.thread_group(self.thread_id)
        # Join before taking snapshots: a delta published in between is then trimmed, not lost.
        # Rendering for this socket elsewhere (``live_local``) happens in its language.
        self.in_order.context = contextvars.copy_context()
        await live_local.follow(self.channel_layer, self.group, self.thread_id, self)
        await self.channel_layer.group_add(
            session_binding.user_group(self.user_id), self.channel_name
        )
        await announcements.join(self.channel_layer, self.channel_name)
        await self.accept()
        metrics.socket_opened(self)
        registry.ensure_reaper()
        await self._catch_up(thread.current_turn_id, live.parse_resume(self.scope["query_string"]))
        await self._announce_presence()
        # From now on only the user is read from the scope: its headers, cookies and session
        # (data included) need not stay in memory for as long as the socket is open.
        self.scope = {"type": "websocket", "user": user}

    async def disconnect(self, code: int) -> None:
        metrics.socket_closed(self)
        if hasattr(self, "group"):
            with contextlib.suppress(ChannelLayerUnavailable):  # Redis down: nothing to tell
                await self._leave()

    async def _leave(self) -> None:
        await announcements.leave(self.channel_layer, self.channel_name)
        await self.channel_layer.group_discard(
            session_binding.user_group(self.user_id), self.channel_name
        )
        await self._unfollow()
        await live.publish(
            self.thread_id,
            live.PresenceLeave(type="presence.leave", channel=self.channel_name),
            layer=self.channel_layer,
        )

    async def _catch_up(self, current_turn_id: int | None, resume: live.Resume | None) -> None:
        """Bring the page up to date: a first connection gets the running answers; a
        reconnection gets only what it missed, from the offsets it reports."""
        running = await self._running_turn_ids()
        if resume is None:
            for turn_id in running:
                await self._show_live(turn_id)
            return
        leaf, offsets = resume
        if leaf != current_turn_id:  # new turns or a branch switch while away
            await self.path_changed(live.PathChanged(type="path.changed"))
            return
        for turn_id in set(offsets) - set(running):  # finished while away
            await self.turn_finished(live.TurnFinished(type="turn.finished", turn_id=turn_id))
        for turn_id in running:
            if turn_id in offsets:
                self.offsets.shows(turn_id, offsets[turn_id])
            await self._show_live(turn_id, render_stored=turn_id not in offsets)

    # -- actions from the browser -----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Do what the frame asks, then say whether it was accepted or why not (the composer
        keeps its text until it hears "accepted": ``fragments.action_receipt``)."""
        try:
            data = ws_actions.parse_action(text_data or bytes_data, settings.MAX_MESSAGE_CHARS)
        except ws_actions.ActionRefused as exc:
            await self.send(fragments.action_receipt(exc.request_id, str(exc)))
            return
        action = data["action"]
        try:
            if action == "send":
                if not await self._send(data):
                    return
            else:
                if not await self._may_still_act():
                    return
                if not permissions.can_write(self.access):
                    raise refusals.ReadOnly()
                await self._act(action, data)
            refusal = ""
        except refusals.TurnRejected as exc:
            refusal = str(exc)
        except (TypeError, ValueError):
            refusal = ws_actions.NOT_UNDERSTOOD
        except ChannelLayerUnavailable:
            log.warning("channel layer unavailable during %r on thread %s", action, self.thread_id)
            refusal = _("Live updates are reconnecting. Try again in a moment.")
        await self.send(fragments.action_receipt(ws_actions.request_id_of(data), refusal))

    async def _act(self, action: str, data: dict) -> None:
        """One action of the browser's; raises ``TurnRejected`` (or ValueError) to refuse it."""
        user = self.scope["user"]
        if action == "stop":
            await self._stop(data.get("turn_id"))
        elif action in ("retry", "regenerate"):
            await launch.branch_turn(user, await self._own_turn_id(data))
        elif action == "edit":
            await launch.branch_turn(
                user, await self._own_turn_id(data), str(data.get("message", ""))
            )
        elif action in ("tool_result", "tool_reject"):
            result = str(data.get("result", "")) if action == "tool_result" else None
            await launch.answer_tool_call(
                user, await self._own_turn_id(data), str(data.get("call_id", "")), result
            )
        elif action == "switch":
            await self._switch(await self._own_turn_id(data))
        elif action == "compare":
            attachment_linking.refuse_in_comparison(data.get("attachments"))
            await compare.start_comparison(
                user, self.thread_id, str(data.get("message", "")), data.get("compare_models")
            )
        else:
            raise ValueError(action)

    async def _may_still_act(self) -> bool:
        """Before every action, whatever messages this socket missed (another process changed
        things without Redis, say): its session still lets its user act, and the user may still
        see this thread (its access level is refreshed). Otherwise the socket closes.

        Both checks (and what ``dispatch`` skipped for ``websocket.receive``: closing old
        connections) in one hop to the database thread: every hop waits behind the other
        sockets' and runners' work there."""
        if self.ended:
            return False
        return await self._follow_checks(*await database_sync_to_async(self._checks)())

    def _checks(self) -> tuple[str | None, Thread | None]:
        """In the database thread (``database_sync_to_async`` closes old connections first):
        what ends this socket's session (None: nothing), and the thread as this user may see it
        now (None: no longer)."""
        problem = session_binding.session_problem(self.user_id, self.session_key)
        if problem:
            return problem, None
        return None, permissions.thread_for(self.scope["user"], self.thread_id)

    async def _follow_checks(self, problem: str | None, thread: Thread | None) -> bool:
        """What ``_checks`` found: False (and the socket closes) when it may no longer act."""
        if problem:
            await self._end_session(problem)
            return False
        return await self._follow_access(thread)

    async def _send(self, data: dict) -> bool:
        """A message: ``_may_still_act``'s checks run in the hop that plans the turn, just
        before it (a hop fewer before the first token; a refusal still creates nothing).
        False when the socket may no longer act (it closes)."""
        if self.ended:
            return False
        attachment_ids = attachment_linking.parse_ids(data.get("attachments"))
        checked: list[tuple[str | None, Thread | None]] = []

        def may_write() -> Thread | None:
            checked.append(self._checks())
            problem, thread = checked[0]
            if problem is None and thread is not None and permissions.can_write(thread.access):
                return thread
            return None

        try:
            await launch.start_turn(
                self.scope["user"],
                self.thread_id,
                str(data.get("message", "")),
                attachment_ids,
                allowed=may_write,
            )
        finally:
            # Also when the plan refused the turn: the socket follows what the checks found.
            acting = await self._follow_checks(*checked[0]) if checked else not self.ended
        if acting and not permissions.can_write(self.access):
            raise refusals.ReadOnly()
        return acting

    async def _own_turn_id(self, data: dict) -> int:
        """The turn named in a request, if it belongs to this socket's thread."""
        turn_id = parse_id(data.get("turn_id")) or 0
        if not await Turn.objects.filter(pk=turn_id, thread_id=self.thread_id).aexists():
            raise refusals.TurnRejected(_("This message no longer exists."))
        return turn_id

    async def _stop(self, turn_id: object) -> None:
        """Stop the named turn, or (the Stop button) whatever is generating in this thread."""
        turn_ids = [await self._own_turn_id({"turn_id": turn_id})] if turn_id else None
        for pk in turn_ids or await self._running_turn_ids(include_paused=True):
            await registry.stop_turn(pk)

    async def _switch(self, turn_id: int) -> None:
        def switch() -> bool:
            thread = permissions.writable_thread_for(self.scope["user"], self.thread_id)
            return thread is not None and conversation.switch_branch(thread, turn_id)

        if not await database_sync_to_async(switch)():
            raise refusals.TurnRejected(_("This message no longer exists."))
        await live.publish(
            self.thread_id, live.PathChanged(type="path.changed"), layer=self.channel_layer
        )

    # -- group messages ---------------------------------------------------------------------

    async def turn_created(self, message: live.TurnCreated) -> None:
        turn_id = message["turn_id"]
        if shared := live.shared_html(message):
            # Rendered once by the runner, before any of the turn's deltas was published.
            self.offsets.shows(turn_id, (0, 0))
            await self.send(shared)
            return
        await self._db_ready()
        # Running elsewhere, a just-created turn has no text yet: its deltas start at block 0.
        snapshot = registry.running_snapshot(turn_id)
        self.offsets.remember(snapshot)
        if message.get("linear", True):
            html = await self._render(lambda turn: fragments.appended_turn(turn, snapshot), turn_id)
        else:
            html = await self._render_path({turn_id: snapshot} if snapshot else {})
        if html:
            await self.send(html)

    async def turn_delta(self, message: live.TurnDelta) -> None:
        if self.offsets.skips(message):
            return
        if self.offsets.has_gap(message):
            # A delta was dropped (slow socket): resend the whole answer so far instead.
            self.offsets.forget(message["turn_id"])
            await self._db_ready()
            await self._show_live(message["turn_id"], render_stored=False)
            return
        await self.send(self.offsets.take_delta(message))

    async def turn_waiting(self, message: live.TurnWaiting) -> None:
        """The turn waits for a place in a saturated process: show how many are ahead."""
        await self.send(message["html"])

    async def turn_updated(self, message: live.TurnUpdated) -> None:
        """Show a turn's current state (live when it is running, on any worker)."""
        await self._show_live(message["turn_id"])

    async def turn_snapshot(self, snapshot: live.Snapshot) -> None:
        """A running turn's whole answer so far: from this worker's runner, or another's reply.
        A browser that reported what it has gets only the rest."""
        html = self.offsets.take_snapshot(snapshot)
        if html is None:
            html = await self._render(
                lambda turn: fragments.replaced_turn(turn, snapshot), snapshot["turn_id"]
            )
        if html:
            await self.send(html)

    async def turn_finished(self, message: live.TurnFinished) -> None:
        self.offsets.forget(message["turn_id"])
        # The runner renders the end of its turn once for every socket; a turn ended otherwise
        # (stopped while waiting for a tool, found dead) is rendered as stored.
        html = live.shared_html(message) or await self._render(
            fragments.finished_turn, message["turn_id"]
        )
        if html:
            await self.send(html)

    async def thread_retitled(self, message: dict) -> None:
        user = self.scope["user"]
        html = await database_sync_to_async(titles.retitled_html)(user, self.thread_id)
        if html:
            await self.send(html)

    async def path_changed(self, message: live.PathChanged) -> None:
        snapshots = registry.running_snapshots()
        for snapshot in snapshots.values():
            self.offsets.remember(snapshot)
        await self.send(await self._render_path(snapshots))
        for turn_id in await self._running_turn_ids():
            if turn_id not in snapshots:
                await self._show_live(turn_id, render_stored=False)

    async def access_changed(self, message: live.AccessChanged) -> None:
        """A share was added, changed or revoked (or the thread deleted): re-check at once."""
        if not self.ended:
            await self._recheck_access()

    async def _recheck_access(self) -> bool:
        """Whether this user may still see the thread. No longer: the chat leaves the page, which
        says why, and the socket closes. Changed: the page's writing controls follow."""
        user = self.scope["user"]
        return await self._follow_access(
            await database_sync_to_async(permissions.thread_for)(user, self.thread_id)
        )

    async def _follow_access(self, thread: Thread | None) -> bool:
        """``_recheck_access`` once the thread was looked up (None: no longer visible)."""
        user = self.scope["user"]
        if thread is None:
            self.ended = True
            await self._unfollow()
            await self.send(
                await database_sync_to_async(fragments.thread_closed)(user, self.thread_id)
            )
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        if thread.access != self.access:
            self.access = thread.access
            await self.send(fragments.access_state(thread))
        return True

    # -- the login session ----------------------------------------------------------------------

    async def session_ended(self, message: live.SessionEnded) -> None:
        """That session logged out (on any worker): its sockets close at once."""
        if message["session"] == self.session_tag and not self.ended:
            await self._end_session(message["reason"])

    async def session_check(self, message: live.SessionCheck) -> None:
        """The user's password or active flag may have changed: is this session still valid?"""
        if not self.ended:
            await self._check_session()

    async def session_renewed(self, message: live.SessionRenewed) -> None:
        """This browser changed its password: its session lives on under a new key, which the
        socket learns by reconnecting (the page sends what it shows; nothing is lost)."""
        if message["session"] == self.session_tag and not self.ended:
            self.ended = True
            await self._unfollow()
            await self.close(code=CLOSE_RECONNECT)

    async def _check_session(self) -> bool:
        """Whether this socket's session still lets its user act; if not, it closes saying why."""
        problem = await database_sync_to_async(session_binding.session_problem)(
            self.user_id, self.session_key
        )
        if problem:
            await self._end_session(problem)
        return problem is None

    async def _end_session(self, reason: str) -> None:
        self.ended = True
        # Nothing more of the thread reaches a socket that is closing.
        await self._unfollow()
        await self.send(fragments.error_notice(reason))
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def channel_layer_reconnected(self, message: dict) -> None:
        """Redis came back (``ResilientRedisChannelLayer`` re-added this socket to its group):
        what was published meanwhile is lost. Fetch it: running answers from their runners
        (from the blocks this page holds), answers that ended meanwhile as stored, and who is
        here."""
        running = await self._running_turn_ids()
        if not all(self.offsets.tracks(t) for t in running):
            # A turn started meanwhile: redraw the path.
            await self.path_changed(live.PathChanged(type="path.changed"))
        else:
            for turn_id in self.offsets.live_turns() - set(running):
                await self.turn_finished(live.TurnFinished(type="turn.finished", turn_id=turn_id))
            for turn_id in running:
                await self._show_live(turn_id, render_stored=False)
        self.viewers = {self.channel_name: self.username}
        await self._announce_presence()

    async def announcements_changed(self, message: dict) -> None:
        """Staff saved or removed a banner: show this user's current ones."""
        user = self.scope["user"]
        await self.send(await database_sync_to_async(announcements.render_for)(user, swap_oob=True))

    # -- presence ---------------------------------------------------------------------------

    async def _announce_presence(self) -> None:
        message = live.PresenceJoin(
            type="presence.join", channel=self.channel_name, user=self.username
        )
        await live.publish(self.thread_id, message, layer=self.channel_layer)

    async def presence_join(self, message: live.PresenceJoin) -> None:
        channel = message["channel"]
        if channel != self.channel_name:
            self.viewers[channel] = message["user"]
            # Tell the newcomer we are here too (it joined after us, so it cannot know).
            here = live.PresenceJoin(
                type="presence.here", channel=self.channel_name, user=self.username
            )
            await live.send(channel, here, layer=self.channel_layer)
        await self.send(fragments.presence(self.viewers.values()))

    async def presence_here(self, message: live.PresenceJoin) -> None:
        self.viewers[message["channel"]] = message["user"]
        await self.send(fragments.presence(self.viewers.values()))

    async def presence_leave(self, message: live.PresenceLeave) -> None:
        if self.viewers.pop(message["channel"], None) is not None:
            await self.send(fragments.presence(self.viewers.values()))

    # -- helpers --------------------------------------------------------------------------------

    async def _show_live(self, turn_id: int, *, render_stored: bool = True) -> None:
        """Show a turn as it is now. Running here: its snapshot. Running on another worker: the
        stored checkpoint at once (``render_stored``), then the runner's snapshot when it
        replies. Not running: as stored."""
        snapshot = registry.running_snapshot(turn_id)
        if snapshot is not None:
            await self.turn_snapshot(snapshot)
            if waiting := admission.waiting_message_for(turn_id):  # still in line: say so
                await self.send(waiting["html"])
            return
        if render_stored:
            # The mirrored text when it is newer than the checkpoint (its runner may be dead).
            html = await self._render(
                lambda turn: fragments.replaced_turn(turn_mirror.freshened(turn)), turn_id
            )
            if html:
                await self.send(html)
        if await registry.request_snapshot(turn_id, self.channel_name):
            self.offsets.awaiting_snapshot(turn_id)

    @database_sync_to_async
    def _render(self, render, turn_id: int) -> str:
        # One row by primary key: no ordering to compile, no join (the fragments of a turn
        # never read its thread).
        turn = Turn.objects.filter(pk=turn_id, thread_id=self.thread_id).order_by()[:1]
        found = list(turn)
        return render(found[0]) if found else ""

    @database_sync_to_async
    def _render_path(self, snapshots: dict[int, live.Snapshot]) -> str:
        thread = permissions.thread_for(self.scope["user"], self.thread_id)
        if thread is None:
            return fragments.error_notice(_("This chat no longer exists."))
        busy = thread.turns.filter(status__in=Turn.ACTIVE).exists()
        return fragments.turn_list(thread, snapshots) + fragments.composer_state(busy=busy)

    @database_sync_to_async
    def _running_turn_ids(self, *, include_paused: bool = False) -> list[int]:
        statuses = Turn.ACTIVE if include_paused else [Turn.Status.IN_PROGRESS]
        return list(
            Turn.objects.filter(thread_id=self.thread_id, status__in=statuses).values_list(
                "pk", flat=True
            )
        )

"""The live-turn protocol: every message about a thread's turns, from runners to sockets.

One home for it (like Zulip's ``send_event``): the channel-layer names, one typed definition
per message, the single ``publish``/``send`` path, the delta HTML (built once per delta by the
runner), and what a socket knows of each running answer (``SocketOffsets``) with the resume
query a reconnecting browser sends (``parse_resume``; ``static/js/app.js`` builds it from the
offset markers ``chat.fragments.offset_marker`` renders).

Who sends what, to the thread's group (``thread_group``) unless said otherwise:

- the runner (``chat.services.turns``): ``turn.created``, ``turn.delta``, ``turn.finished``,
  and ``turn.snapshot`` to the socket that sent it ``snapshot.request`` on its runner channel;
- the turn services: ``turn.updated``, ``turn.finished`` (a paused turn stopped, a dead one
  reaped), ``turn.stop`` to a runner channel;
- sockets: ``path.changed``, ``presence.join``/``leave`` and ``presence.here`` to one socket;
- sharing: ``access.changed``; ``session_binding``: ``session.*`` to the user's group.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import parse_qs

from channels.layers import get_channel_layer
from django.core.exceptions import SynchronousOnlyOperation
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe

from chat import fragments, live_local
from chat.channel_layer import LocalChannelLayer
from chat.models import Turn
from chat.request_ids import parse_count, parse_id
from chat.services.conversation import Siblings

RUNNER_CHANNEL_PREFIX = "turn-runner"
# A page reports the live answers it holds; there are never more than a few.
MAX_RESUMED = 64


def thread_group(thread_id: int) -> str:
    """Every socket showing the thread, on every worker."""
    return f"thread-{thread_id}"


def new_runner_channel() -> str:
    """Where a runner listens for stop and snapshot requests. A plain channel, not a
    process-local one (``new_channel()``'s ``!`` names): channels_redis serves all of a
    process's local channels through one receive lock, and a runner waiting on it would starve
    every websocket of that worker."""
    return f"{RUNNER_CHANNEL_PREFIX}.{uuid.uuid4().hex}"


# -- the messages --------------------------------------------------------------------------------


class Snapshot(TypedDict):
    """A running answer from block 0 (or, as ``TurnDelta``, from ``start``): finished blocks of
    HTML, the rendered open tail, the same for the reasoning, and the tool cards."""

    turn_id: int
    start: int
    blocks: list[str]
    tail: str
    reasoning_start: int
    reasoning_blocks: list[str]
    reasoning_tail: str
    tools_html: NotRequired[str]


class TurnDelta(Snapshot):
    """What a runner produced in one coalescing window; ``html`` as sent to the sockets that
    hold exactly the blocks before it (``tools_html`` only when the tool cards changed). Not
    over the channel layer, where it would double the payload (``publish``)."""

    type: Literal["turn.delta"]
    html: NotRequired[str]


class TurnSnapshot(Snapshot):
    type: Literal["turn.snapshot"]


class TurnCreated(TypedDict):
    """A new turn; ``html`` (rendered once by the runner) when it continues the path on screen."""

    type: Literal["turn.created"]
    turn_id: int
    linear: bool
    html: NotRequired[str]
    language: NotRequired[str]  # the language of ``html`` (``shared_html``)


class TurnWaiting(TypedDict):
    """The process is saturated: the turn waits in line (``turns.admission``), ``ahead`` turns
    before it; ``html`` shows that place in the turn's open tail."""

    type: Literal["turn.waiting"]
    turn_id: int
    ahead: int
    html: str


class TurnUpdated(TypedDict):
    """Show the turn as it is now (a tool answer came in)."""

    type: Literal["turn.updated"]
    turn_id: int


class TurnFinished(TypedDict):
    """The turn ended (or paused); ``html`` when its runner rendered the end for everyone."""

    type: Literal["turn.finished"]
    turn_id: int
    html: NotRequired[str]
    language: NotRequired[str]  # the language of ``html`` (``shared_html``)


class PathChanged(TypedDict):
    """Another branch is now the visible path: redraw it."""

    type: Literal["path.changed"]


class ThreadRetitled(TypedDict):
    """A model wrote the chat's title: redraw the header and the sidebar."""

    type: Literal["thread.retitled"]
    thread_id: int


class AccessChanged(TypedDict):
    """A share changed (or the thread was deleted): re-check this socket's access."""

    type: Literal["access.changed"]


class PresenceJoin(TypedDict):
    type: Literal["presence.join", "presence.here"]
    channel: str
    user: str


class PresenceLeave(TypedDict):
    type: Literal["presence.leave"]
    channel: str


class TurnStop(TypedDict):
    """To a runner channel: stop generating (the partial answer is kept)."""

    type: Literal["turn.stop"]


class SnapshotRequest(TypedDict):
    """To a runner channel: send a ``turn.snapshot`` to ``reply_to``."""

    type: Literal["snapshot.request"]
    reply_to: str


class SessionEnded(TypedDict):
    """To the user's group (``session_binding.user_group``): that session logged out."""

    type: Literal["session.ended"]
    session: str
    reason: str


class SessionCheck(TypedDict):
    """To the user's group: the password or active flag may have changed; re-check."""

    type: Literal["session.check"]


class SessionRenewed(TypedDict):
    """To the user's group: that session lives on under a new key; reconnect."""

    type: Literal["session.renewed"]
    session: str


SessionMessage = SessionEnded | SessionCheck | SessionRenewed

GroupMessage = (
    TurnCreated
    | TurnDelta
    | TurnUpdated
    | TurnWaiting
    | TurnFinished
    | PathChanged
    | ThreadRetitled
    | AccessChanged
    | PresenceJoin
    | PresenceLeave
)
DirectMessage = TurnSnapshot | PresenceJoin | TurnStop | SnapshotRequest


async def publish(thread_id: int, message: GroupMessage, *, layer: Any = None) -> None:
    """To every socket of the thread, on every worker. Raises ``ChannelLayerUnavailable``.

    This process's sockets get it directly (``live_local``), in order with everything else
    they handle; the channel layer carries it to the others: with the in-process layer only to
    its members that are not such sockets; over Redis to each worker's relay of the thread,
    tagged with this process's origin (this worker's relay skips the copy that comes back)."""
    live_local.deliver(thread_id, message)
    layer = layer or get_channel_layer()
    group = thread_group(thread_id)
    if isinstance(layer, LocalChannelLayer):
        layer.group_send_except(group, message, live_local.local_channels(thread_id))
    else:
        await layer.group_send(group, _for_other_workers(message))


def with_html(message: dict) -> dict:
    """A delta from another worker (``_for_other_workers``) with its HTML built again, once
    for every socket of this worker that holds exactly the blocks before it."""
    if message.get("type") == "turn.delta" and "html" not in message:
        message["html"] = delta_html(message, message["start"], message["reasoning_start"])
    return message


def _for_other_workers(message: GroupMessage) -> dict:
    """The channel-layer copy: tagged with this process, and each piece once — a delta's HTML
    repeats its blocks and tail, so it is left out (built again where it arrives)."""
    copy: dict[str, Any] = {**message, live_local.ORIGIN_KEY: live_local.ORIGIN}
    if copy["type"] == "turn.delta":
        del copy["html"]
    return copy


async def send(channel: str, message: DirectMessage, *, layer: Any = None) -> None:
    """To one socket or one runner."""
    await (layer or get_channel_layer()).send(channel, message)


async def publish_to_user(group: str, message: SessionMessage) -> None:
    """To every socket of one user (``session_binding.user_group``), on every worker."""
    await get_channel_layer().group_send(group, message)


# -- what the runner publishes -------------------------------------------------------------------


def snapshot(
    turn_id: int,
    *,
    blocks: Sequence[str],
    tail: str,
    reasoning_blocks: Sequence[str],
    reasoning_tail: str,
    tool_calls: list[dict],
) -> Snapshot:
    """A running answer so far, in the shape of a delta starting at block 0."""
    return Snapshot(
        turn_id=turn_id,
        start=0,
        blocks=list(blocks),
        tail=tail,
        reasoning_start=0,
        reasoning_blocks=list(reasoning_blocks),
        reasoning_tail=reasoning_tail,
        tools_html=fragments.tool_cards(turn_id, tool_calls),
    )


def delta(piece: Snapshot, *, tool_calls: list[dict] | None) -> TurnDelta:
    """The message for one coalescing window, its HTML built once for every socket that holds
    exactly the blocks before it; the tool cards when they changed (``tool_calls``)."""
    message = TurnDelta(type="turn.delta", html="", **piece)
    message.pop("tools_html", None)
    if tool_calls is not None:
        message["tools_html"] = fragments.tool_cards(piece["turn_id"], tool_calls)
    message["html"] = delta_html(message, message["start"], message["reasoning_start"])
    return message


def created(turn: Turn, *, linear: bool, siblings: Siblings | None, log: Any) -> TurnCreated:
    """``turn.created``, with the new turn's fragment (rendered once, for every socket) when
    it continues the path on screen. Called on the loop right after the plan (``launch``),
    not in its database-thread hop, which every socket and runner of the worker shares.
    Raises ``SynchronousOnlyOperation`` should the fragment need the database."""
    message = TurnCreated(type="turn.created", turn_id=turn.pk, linear=linear)
    if linear:
        empty = snapshot(
            turn.pk, blocks=(), tail="", reasoning_blocks=(), reasoning_tail="", tool_calls=[]
        )
        try:
            message["html"] = fragments.appended_turn(turn, empty, siblings)
            message["language"] = translation.get_language()
        except SynchronousOnlyOperation:
            raise  # rendered again in the database thread (``launch``)
        except Exception:
            log.exception("could not render the new turn %s", turn.pk)  # sockets will
    return message


def shared_html(message: TurnCreated | TurnFinished) -> str | None:
    """The fragment rendered once for every socket, for a socket whose page is in the language
    it was rendered in (the sender's); another socket renders the turn itself."""
    if message.get("language") == translation.get_language():
        return message.get("html")
    return None


def finished(turn: Turn, *, siblings: Siblings | None, log: Any) -> TurnFinished:
    """``turn.finished`` with the end of the turn rendered once for every socket (without it
    when rendering fails: sockets then render what is stored)."""
    message = TurnFinished(type="turn.finished", turn_id=turn.pk)
    try:
        message["html"] = fragments.finished_turn(turn, siblings)
        message["language"] = translation.get_language()
    except Exception:
        log.exception("could not render the end of turn %s", turn.pk)
    return message


# -- delta HTML ----------------------------------------------------------------------------------


def delta_html(message: Snapshot, known_blocks: int, known_reasoning: int) -> SafeString:
    """The part of a delta (or snapshot) a socket holding ``known_*`` blocks has not shown yet
    (blocks are never doubled), ending with the new offset marker.

    Built with plain string joins (every piece is already safe HTML and the ids are integers):
    this runs for every socket that lags, at every coalescing window."""
    turn_id = int(message["turn_id"])
    parts = [
        _new_blocks(f"turn-{turn_id}-answer", message["start"], message["blocks"], known_blocks),
        f'<div id="turn-{turn_id}-tail" hx-swap-oob="innerHTML">{message["tail"]}</div>',
    ]
    if "tools_html" in message:
        parts.append(
            f'<div id="turn-{turn_id}-tools" hx-swap-oob="innerHTML">{message["tools_html"]}</div>'
        )
    if message["reasoning_blocks"] or message["reasoning_tail"]:
        parts.append(
            _new_blocks(
                f"turn-{turn_id}-reasoning",
                message["reasoning_start"],
                message["reasoning_blocks"],
                known_reasoning,
            )
        )
        parts.append(
            f'<div id="turn-{turn_id}-reasoning-tail" hx-swap-oob="innerHTML">'
            f"{message['reasoning_tail']}</div>"
        )
    parts.append(fragments.offset_marker(turn_id, *_end(message), oob=True))
    return mark_safe("".join(parts))


def _end(message: Snapshot) -> tuple[int, int]:
    """How many blocks (answer, reasoning) a socket holds once it has shown ``message``."""
    return (
        message["start"] + len(message["blocks"]),
        message["reasoning_start"] + len(message["reasoning_blocks"]),
    )


def _new_blocks(target: str, start: int, blocks: list[str], known: int) -> str:
    fresh = blocks[known - start :] if start <= known else blocks
    if not fresh:
        return ""
    return f'<div id="{target}" hx-swap-oob="beforeend">{"".join(fresh)}</div>'


# -- one socket's view ---------------------------------------------------------------------------


Resume = tuple[int | None, dict[int, tuple[int, int]]]


def parse_resume(query_string: bytes) -> Resume | None:
    """What a reconnecting browser already shows: ``leaf=<turn id>`` (the last turn on screen)
    and ``resume=<turn>:<blocks>:<reasoning blocks>,…`` for each answer it was receiving (read
    from its offset markers). None on a first connection (no ``leaf``)."""
    query = parse_qs(query_string.decode("latin-1"))
    if "leaf" not in query:
        return None
    leaf = query["leaf"][0]
    offsets: dict[int, tuple[int, int]] = {}
    for item in ",".join(query.get("resume", [])).split(",")[:MAX_RESUMED]:
        parts = item.split(":")
        if len(parts) != 3:
            continue
        turn, blocks, reasoning = parse_id(parts[0]), parse_count(parts[1]), parse_count(parts[2])
        if turn is not None and blocks is not None and reasoning is not None:
            offsets[turn] = (blocks, reasoning)
    return parse_id(leaf), offsets


class SocketOffsets:
    """What one socket shows of each running answer, so that it gets every block once."""

    def __init__(self) -> None:
        # How many finished blocks (answer, reasoning) of each running turn it has shown.
        self.known: dict[int, tuple[int, int]] = {}
        # Turns whose live state was asked of their runner on another worker: their deltas
        # are skipped until the snapshot (which contains them) arrives.
        self.pending: set[int] = set()

    def shows(self, turn_id: int, blocks: tuple[int, int]) -> None:
        self.known[turn_id] = blocks

    def remember(self, snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            self.known[snapshot["turn_id"]] = _end(snapshot)

    def forget(self, turn_id: int) -> None:
        self.known.pop(turn_id, None)
        self.pending.discard(turn_id)

    def awaiting_snapshot(self, turn_id: int) -> None:
        self.pending.add(turn_id)

    def live_turns(self) -> set[int]:
        """The running answers this socket shows."""
        return set(self.known)

    def tracks(self, turn_id: int) -> bool:
        return turn_id in self.known or turn_id in self.pending

    def skips(self, message: TurnDelta) -> bool:
        """A delta already contained in the snapshot this socket waits for."""
        return message["turn_id"] in self.pending

    def has_gap(self, message: TurnDelta) -> bool:
        """A delta before this one was dropped (a slow socket): the whole answer is needed."""
        blocks, reasoning = self.known.get(message["turn_id"], (0, 0))
        return message["start"] > blocks or message["reasoning_start"] > reasoning

    def take_delta(self, message: TurnDelta) -> str:
        """This socket's HTML for a delta without a gap; it then holds the delta's blocks."""
        known = self.known.get(message["turn_id"], (0, 0))
        if (message["start"], message["reasoning_start"]) == known and "html" in message:
            html = message["html"]  # built once by the runner for this, the usual case
        else:
            html = delta_html(message, *known)
        self.remember(message)
        return html

    def take_snapshot(self, snapshot: Snapshot) -> str | None:
        """The rest of a running answer for a socket that reported what it holds; None when
        it holds nothing usable (the whole turn must be drawn again)."""
        turn_id = snapshot["turn_id"]
        self.pending.discard(turn_id)
        known = self.known.get(turn_id)
        self.remember(snapshot)
        if (
            known is not None
            and known[0] <= len(snapshot["blocks"])
            and known[1] <= len(snapshot["reasoning_blocks"])
        ):
            return delta_html(snapshot, *known)
        return None

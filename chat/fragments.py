"""HTML fragments sent over the websocket. Each is a named partial of the page it belongs to,
so a turn has one template whether it arrives with the page, by htmx or over the socket."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from chat import compare_columns as compare
from chat.markdown import render_markdown
from chat.models import Thread, Turn
from chat.services.conversation import Siblings, ThreadTree, siblings_of, sidebar_lists


def turn_context(
    turn: Turn, snapshot: dict | None = None, siblings: Siblings | None = None
) -> dict:
    """Template context of one turn; a running turn shows the live snapshot of its answer."""
    offset = None
    if snapshot is not None:
        # What the browser holds of a live answer; it reports this when its socket reconnects.
        offset = (len(snapshot["blocks"]), len(snapshot["reasoning_blocks"]))
        answer_html = mark_safe("".join(snapshot["blocks"]))
        tail_html = mark_safe(snapshot["tail"])
        reasoning_html = mark_safe(
            "".join(snapshot["reasoning_blocks"]) + snapshot["reasoning_tail"]
        )
    else:
        answer_html = mark_safe(render_markdown(turn.output_text))
        tail_html = ""
        reasoning_html = mark_safe(render_markdown(turn.reasoning_text))
    return {
        "turn": turn,
        "siblings": siblings,
        "tools_html": mark_safe(
            snapshot["tools_html"]
            if snapshot
            else tool_cards(turn.pk, turn.tool_calls, turn.status)
        ),
        "answer_html": answer_html,
        "tail_html": tail_html,
        "reasoning_html": reasoning_html,
        "user_html": mark_safe(render_markdown(turn.user_text)),
        "offset": offset,
    }


def path_page(
    thread: Thread, snapshots: dict[int, dict], before_id: int | None = None
) -> dict | None:
    """One page of the conversation, as the template's ``turns`` and ``earlier_url``: the newest
    ``HISTORY_PAGE_TURNS`` turns of the visible path, or those just above ``before_id``, with
    their sibling switchers; running turns show ``snapshots[turn id]``. ``earlier_url`` loads
    the page before (empty from the first turn on). None if ``before_id`` is not in the thread.
    Only the page's turns are rendered (markdown is most of a page's cost)."""
    tree = ThreadTree(thread)
    if before_id is not None and before_id not in tree.turns:
        return None
    turns, more = tree.page(settings.HISTORY_PAGE_TURNS, before_id)
    earlier_url = ""
    if more:
        earlier_url = f"{reverse('chat:earlier', args=[thread.pk])}?before={turns[0].pk}"
    items = [turn_context(t, snapshots.get(t.pk), tree.siblings(t)) for t in turns]
    if before_id is None:
        compare.attach_columns(thread, tree, items, snapshots, turn_context)
    return {"turns": items, "earlier_url": earlier_url}


def render_turn(
    turn: Turn, snapshot: dict | None = None, siblings: Siblings | None = None
) -> str:
    """One turn; ``siblings`` when the caller knows them (else one small query)."""
    return render_to_string(
        "chat/thread.html#turn", turn_context(turn, snapshot, siblings or siblings_of(turn))
    )


def turn_list(thread: Thread, snapshots: dict[int, dict]) -> str:
    """The newest page of the visible path, replacing what is on screen (after a branch or a
    switch); earlier turns load on demand, as on the page."""
    html = render_to_string("chat/thread.html#turn-list", path_page(thread, snapshots))
    return html.replace('<section id="turns"', '<section hx-swap-oob="true" id="turns"', 1)


def tool_cards(turn_id: int, calls: list[dict], status: str = "") -> str:
    return render_to_string(
        "chat/thread.html#tool-cards",
        {"turn_id": turn_id, "calls": calls, "awaiting": status == Turn.Status.AWAITING_TOOL},
    )


def appended_turn(turn: Turn, snapshot: dict | None, siblings: Siblings | None = None) -> str:
    return format_html(
        '<div id="turns" hx-swap-oob="beforeend">{}</div>{}',
        mark_safe(render_turn(turn, snapshot, siblings)),
        composer_state(busy=True),
    )


def replaced_turn(
    turn: Turn,
    snapshot: dict | None = None,
    announce: str = "",
    siblings: Siblings | None = None,
) -> str:
    html = render_turn(turn, snapshot, siblings)
    html = html.replace("<article ", '<article hx-swap-oob="true" ', 1)
    html += composer_state(busy=not turn.is_finished)
    if announce:
        # Only the live region's text changes, so screen readers announce it once.
        html += format_html('<div id="announcer" hx-swap-oob="innerHTML">{}</div>', announce)
    return html


def finished_turn(turn: Turn, siblings: Siblings | None = None) -> str:
    """A turn as it ended (or paused for a tool answer), replacing it, announced politely."""
    announce = f"Answer {turn.get_status_display().lower()}." if turn.is_finished else ""
    return replaced_turn(turn, announce=announce, siblings=siblings) + compare.cost_update(turn)


def delta(message: dict, known_blocks: int, known_reasoning: int) -> SafeString:
    """The part of a coalesced delta this socket has not shown yet (blocks are never doubled).

    Built with plain string joins (every piece is already safe HTML and the ids are integers):
    this runs for every socket at every coalescing window. The runner builds it once per delta
    for sockets that hold exactly the blocks before it (``shared_delta``)."""
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
    parts.append(
        offset_marker(
            turn_id,
            message["start"] + len(message["blocks"]),
            message["reasoning_start"] + len(message["reasoning_blocks"]),
        )
    )
    return mark_safe("".join(parts))


def shared_delta(message: dict) -> SafeString:
    """The delta as sent to a socket holding exactly the blocks before it (the usual case):
    built once by the runner and sent as is to every such socket."""
    return delta(message, message["start"], message["reasoning_start"])


def offset_marker(turn_id: int, blocks: int, reasoning_blocks: int) -> str:
    return (
        f'<span id="turn-{int(turn_id)}-offset" hidden data-blocks="{int(blocks)}"'
        f' data-reasoning="{int(reasoning_blocks)}" hx-swap-oob="true"></span>'
    )


def _new_blocks(target: str, start: int, blocks: list[str], known: int) -> str:
    fresh = blocks[known - start :] if start <= known else blocks
    if not fresh:
        return ""
    return f'<div id="{target}" hx-swap-oob="beforeend">{"".join(fresh)}</div>'


def composer_state(*, busy: bool) -> str:
    return render_to_string("chat/thread.html#composer-state", {"busy": busy})


def error_notice(message: str) -> str:
    return format_html(
        '<div id="composer-error" hx-swap-oob="true" class="composer-error" role="alert">{}</div>',
        message,
    )


def presence(usernames: Iterable[str]) -> str:
    """Who is viewing the thread now (each person once, however many tabs)."""
    viewers = sorted(set(usernames), key=str.lower)
    html = render_to_string("chat/thread.html#presence", {"viewers": viewers})
    return html.replace('<div id="presence"', '<div hx-swap-oob="true" id="presence"', 1)


def access_state(thread: Thread) -> str:
    """What this viewer may do, after a share changed (read-only hides the writing controls)."""
    html = render_to_string("chat/thread.html#access-state", {"thread": thread})
    return html.replace('<div id="access-state"', '<div hx-swap-oob="true" id="access-state"', 1)


def thread_closed(user: AbstractBaseUser, thread_id: int) -> str:
    """For a page whose chat was deleted or is no longer shared with its viewer: everything of
    the chat leaves the page (title, turns, presence, writing controls, its sidebar entry) and
    the reason is shown."""
    if Thread.objects.filter(pk=thread_id).exists():
        reason = "This chat is no longer shared with you."
    else:
        reason = "This chat was deleted."
    context = {"reason": reason, "thread": None, **sidebar_lists(user)}
    html = render_to_string("chat/thread.html#thread-closed", context)
    sidebar = '<div id="sidebar-lists">'
    return html.replace(sidebar, '<div hx-swap-oob="true" id="sidebar-lists">', 1)

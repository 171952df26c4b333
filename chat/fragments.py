"""HTML fragments sent over the websocket. Each is a named partial of the page it belongs to,
so a turn has one template whether it arrives with the page, by htmx or over the socket."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from chat.markdown import render_markdown
from chat.models import Thread, Turn
from chat.services.conversation import Siblings, ThreadTree


def turn_context(
    turn: Turn, snapshot: dict | None = None, siblings: Siblings | None = None
) -> dict:
    """Template context of one turn; a running turn shows the live snapshot of its answer."""
    if snapshot is not None:
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
    }


def path_contexts(thread: Thread, snapshots: dict[int, dict]) -> list[dict]:
    """Contexts of the turns on the thread's visible path, with their sibling switchers;
    running turns show ``snapshots[turn id]``."""
    tree = ThreadTree(thread)
    return [turn_context(t, snapshots.get(t.pk), tree.siblings(t)) for t in tree.path()]


def render_turn(turn: Turn, snapshot: dict | None = None) -> str:
    siblings = ThreadTree(turn.thread).siblings(turn)
    return render_to_string("chat/thread.html#turn", turn_context(turn, snapshot, siblings))


def turn_list(thread: Thread, snapshots: dict[int, dict]) -> str:
    """The whole visible path, replacing what is on screen (after a branch or a switch)."""
    html = render_to_string(
        "chat/thread.html#turn-list", {"turns": path_contexts(thread, snapshots)}
    )
    return html.replace('<section id="turns"', '<section hx-swap-oob="true" id="turns"', 1)


def tool_cards(turn_id: int, calls: list[dict], status: str = "") -> str:
    return render_to_string(
        "chat/thread.html#tool-cards",
        {"turn_id": turn_id, "calls": calls, "awaiting": status == Turn.Status.AWAITING_TOOL},
    )


def appended_turn(turn: Turn, snapshot: dict | None) -> str:
    return format_html(
        '<div id="turns" hx-swap-oob="beforeend">{}</div>{}',
        mark_safe(render_turn(turn, snapshot)),
        composer_state(busy=True),
    )


def replaced_turn(turn: Turn, snapshot: dict | None = None, announce: str = "") -> str:
    html = render_turn(turn, snapshot).replace("<article ", '<article hx-swap-oob="true" ', 1)
    html += composer_state(busy=not turn.is_finished)
    if announce:
        # Only the live region's text changes, so screen readers announce it once.
        html += format_html('<div id="announcer" hx-swap-oob="innerHTML">{}</div>', announce)
    return html


def delta(message: dict, known_blocks: int, known_reasoning: int) -> SafeString:
    """The part of a coalesced delta this socket has not shown yet (blocks are never doubled)."""
    turn_id = message["turn_id"]
    parts = [
        _new_blocks(f"turn-{turn_id}-answer", message["start"], message["blocks"], known_blocks),
        format_html(
            '<div id="turn-{}-tail" hx-swap-oob="innerHTML">{}</div>',
            turn_id,
            mark_safe(message["tail"]),
        ),
    ]
    if "tools_html" in message:
        parts.append(
            format_html(
                '<div id="turn-{}-tools" hx-swap-oob="innerHTML">{}</div>',
                turn_id,
                mark_safe(message["tools_html"]),
            )
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
            format_html(
                '<div id="turn-{}-reasoning-tail" hx-swap-oob="innerHTML">{}</div>',
                turn_id,
                mark_safe(message["reasoning_tail"]),
            )
        )
    return mark_safe("".join(parts))


def _new_blocks(target: str, start: int, blocks: list[str], known: int) -> str:
    fresh = blocks[known - start :] if start <= known else blocks
    if not fresh:
        return ""
    return format_html(
        '<div id="{}" hx-swap-oob="beforeend">{}</div>', target, mark_safe("".join(fresh))
    )


def composer_state(*, busy: bool) -> str:
    return render_to_string("chat/thread.html#composer-state", {"busy": busy})


def error_notice(message: str) -> str:
    return format_html(
        '<div id="composer-error" hx-swap-oob="true" class="composer-error" role="alert">{}</div>',
        message,
    )

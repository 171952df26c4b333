"""HTML fragments sent over the websocket. Each is a named partial of the page it belongs to,
so a turn has one template whether it arrives with the page, by htmx or over the socket."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from chat import compare_columns as compare
from chat.markdown import render_markdown
from chat.models import Attachment, Thread, Turn
from chat.services.attachments import linking as attachment_linking
from chat.services.conversation import Siblings, ThreadTree, siblings_of, sidebar_lists


def turn_context(
    turn: Turn,
    snapshot: dict | None = None,
    siblings: Siblings | None = None,
    attachments: list[Attachment] | None = None,
) -> dict:
    """Template context of one turn; a running turn shows the live snapshot of its answer.
    ``attachments``: the turn's files when the caller loaded a page's at once (else a query)."""
    if attachments is None:
        attachments = getattr(turn, "attachment_list", None)  # set when the turn was planned
    if attachments is None:
        attachments = attachment_linking.of_turns([turn.pk]).get(turn.pk, [])
    offset_html = ""
    if snapshot is not None:
        offset_html = mark_safe(
            offset_marker(
                turn.pk, len(snapshot["blocks"]), len(snapshot["reasoning_blocks"]), oob=False
            )
        )
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
        "offset_html": offset_html,
        # The files the message was sent with; the model's own (audio) for the answer.
        "files": [a for a in attachments if not a.from_model],
        "model_files": [a for a in attachments if a.from_model],
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
    spent = compare.costs([t.pk for t in turns if t.is_finished])
    files = attachment_linking.of_turns(t.pk for t in turns)  # one query for the page
    items = [
        turn_context(t, snapshots.get(t.pk), tree.siblings(t), files.get(t.pk, []))
        | {"cost": spent.get(t.pk)}
        for t in turns
    ]
    if before_id is None:
        compare.attach_columns(thread, tree, items, snapshots, turn_context)
    return {"turns": items, "earlier_url": earlier_url}


def render_turn(
    turn: Turn,
    snapshot: dict | None = None,
    siblings: Siblings | None = None,
    *,
    oob: bool = False,
) -> str:
    """One turn; ``siblings`` when the caller knows them (else one small query); ``oob``:
    replacing the one on the page."""
    context = turn_context(turn, snapshot, siblings or siblings_of(turn))
    cost = answer_cost(turn)
    return render_to_string("chat/thread.html#turn", {**context, "cost": cost, "oob": oob})


def answer_cost(turn: Turn) -> Decimal | None:
    """What a finished turn cost (None while it runs, or with no usage record): known to the
    runner that just wrote its only usage record (``store.store_end``), else one query."""
    if not turn.is_finished:
        return None
    known = getattr(turn, "recorded_cost", None)
    return known if known is not None else compare.costs([turn.pk]).get(turn.pk)


def turn_list(thread: Thread, snapshots: dict[int, dict]) -> str:
    """The newest page of the visible path, replacing what is on screen (after a branch or a
    switch); earlier turns load on demand, as on the page."""
    return render_to_string(
        "chat/thread.html#turn-list", {**path_page(thread, snapshots), "oob": True}
    )


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
    html = render_turn(turn, snapshot, siblings, oob=True)
    html += composer_state(busy=not turn.is_finished)
    if announce:
        # Only the live region's text changes, so screen readers announce it once.
        html += format_html('<div id="announcer" hx-swap-oob="innerHTML">{}</div>', announce)
    return html


def finished_turn(turn: Turn, siblings: Siblings | None = None) -> str:
    """A turn as it ended (or paused for a tool answer), replacing it, announced politely."""
    status = turn.get_status_display().lower()
    # Translators: read out by screen readers when an answer ends, e.g. "Answer completed."
    announce = _("Answer %(status)s.") % {"status": status} if turn.is_finished else ""
    if announce and turn.error:
        # Said here, once, not by the turn's error paragraph, which every redraw re-inserts.
        announce += f" {turn.error}"
    return replaced_turn(turn, announce=announce, siblings=siblings) + compare.cost_update(turn)


def offset_marker(turn_id: int, blocks: int, reasoning_blocks: int, *, oob: bool) -> str:
    """What the browser holds of a live answer (finished blocks of the answer and of the
    reasoning); it reports this when its socket reconnects (``chat.live.parse_resume``). The one
    place it is rendered: in a turn (``oob=False``) and at the end of every delta."""
    swap = ' hx-swap-oob="true"' if oob else ""
    return (
        f'<span id="turn-{int(turn_id)}-offset" hidden data-blocks="{int(blocks)}"'
        f' data-reasoning="{int(reasoning_blocks)}"{swap}></span>'
    )


def composer_state(*, busy: bool) -> str:
    return render_to_string("chat/thread.html#composer-state", {"busy": busy})


def error_notice(message: str) -> str:
    return format_html(
        '<div id="composer-error" hx-swap-oob="true" class="composer-error" role="alert">{}</div>',
        message,
    )


def action_receipt(request_id: str, refusal: str = "") -> str:
    """The reply to an action: its refusal's reason in the composer (or the composer's error
    cleared) and, for a request the page named, whether it was accepted, so the page keeps the
    typed text until the server took it (``static/js/composer.js``)."""
    html = error_notice(refusal)
    if request_id:
        html += format_html(
            '<div id="action-receipt" hx-swap-oob="true" hidden data-request="{}"'
            ' data-outcome="{}"></div>',
            request_id,
            "refused" if refusal else "accepted",
        )
    return html


def presence(usernames: Iterable[str]) -> str:
    """Who is viewing the thread now (each person once, however many tabs)."""
    viewers = sorted(set(usernames), key=str.lower)
    return render_to_string("chat/thread.html#presence", {"viewers": viewers, "oob": True})


def access_state(thread: Thread) -> str:
    """What this viewer may do, after a share changed (read-only hides the writing controls)."""
    return render_to_string("chat/thread.html#access-state", {"thread": thread, "oob": True})


def thread_closed(user: AbstractBaseUser, thread_id: int) -> str:
    """For a page whose chat was deleted or is no longer shared with its viewer: everything of
    the chat leaves the page (title, turns, presence, writing controls, its sidebar entry) and
    the reason is shown."""
    if Thread.objects.filter(pk=thread_id).exists():
        reason = _("This chat is no longer shared with you.")
    else:
        reason = _("This chat was deleted.")
    context = {"reason": reason, "thread": None, "oob": True, **sidebar_lists(user)}
    return render_to_string("chat/thread.html#thread-closed", context)

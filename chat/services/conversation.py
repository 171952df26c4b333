"""Threads and the tree of turns: who may see what, the visible path, and what to send upstream."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from chat.models import Provider, Thread, Turn

TITLE_LENGTH = 60


class TurnRejected(Exception):
    """A message that cannot be sent; the text is shown to the user."""


def visible_threads(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Thread]:
    if not user.is_authenticated:
        return Thread.objects.none()
    return Thread.objects.filter(owner=user)


def thread_for(user: AbstractBaseUser | AnonymousUser, thread_id: int) -> Thread | None:
    """The thread if this user may see it, else None (callers answer 404: no existence leak)."""
    return visible_threads(user).select_related("provider").filter(pk=thread_id).first()


def title_from(text: str) -> str:
    """A readable title from the first message: its first line, cut at a word boundary."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= TITLE_LENGTH:
        return line or "New chat"
    return line[:TITLE_LENGTH].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def thread_path(thread: Thread) -> list[Turn]:
    """The turns from the root to the thread's current turn, loaded in one query."""
    if thread.current_turn_id is None:
        return []
    turns = {t.pk: t for t in thread.turns.all()}
    path: list[Turn] = []
    turn = turns.get(thread.current_turn_id)
    while turn is not None:
        path.append(turn)
        turn = turns.get(turn.parent_id) if turn.parent_id else None
    path.reverse()
    return path


def validate_message(text: str, max_chars: int) -> str:
    text = text.strip()
    if not text:
        raise TurnRejected("Type a message first.")
    if len(text) > max_chars:
        raise TurnRejected(
            f"That message is too long ({len(text):,} characters; the limit is {max_chars:,})."
        )
    return text


def responses_history(path: list[Turn], new_text: str) -> list[dict[str, str]]:
    """The whole conversation as Responses ``input`` items, for when the upstream forgot it."""
    items: list[dict[str, str]] = []
    for turn in path:
        items.append({"role": "user", "content": turn.user_text})
        if turn.output_text:
            items.append({"role": "assistant", "content": turn.output_text})
    items.append({"role": "user", "content": new_text})
    return items


def continuation_id(parent: Turn | None) -> str | None:
    """The parent's response id, when the upstream holds that answer whole (not a cut stream)."""
    if parent is None or not parent.response_id:
        return None
    if parent.status in (Turn.Status.COMPLETED, Turn.Status.INCOMPLETE):
        return parent.response_id
    return None


def api_for(thread: Thread) -> str:
    return thread.provider.default_api if thread.provider else Provider.Api.RESPONSES

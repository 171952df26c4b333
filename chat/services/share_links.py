"""Share by link: a read-only snapshot of a thread's visible path, opened by a long random token.

The snapshot is the path from the first turn to the turn that was current when the link was made
(finished turns only); turns added later, on any branch, never show. Revoking deletes the link.
Who may open one: anyone logged in on this instance; anonymous visitors only when staff turned
on ``SiteSettings.anonymous_share_links``.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from chat.models import ShareLink, SiteSettings, Thread, Turn
from chat.services import conversation

# 32 random bytes: 43 URL-safe characters, not guessable and unrelated to any id.
TOKEN_BYTES = 32
# What a copy keeps of each turn: the conversation and its accounting, not the runner's state.
_COPIED_FIELDS = (
    "user_text",
    "output_text",
    "reasoning_text",
    "status",
    "error",
    "api",
    "provider_id",
    "model",
    "params",
    "tool_calls",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "time_to_first_token_ms",
    "duration_ms",
    "finished_at",
)


class ShareLinkError(ValueError):
    """A link that cannot be made; the message says why."""


def links_of(thread: Thread) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(thread=thread).select_related("leaf")


def snapshot_leaf(thread: Thread) -> Turn | None:
    """The last finished turn of the visible path, up to the first unfinished one."""
    leaf = None
    for turn in conversation.ThreadTree(thread).path(thread.current_turn_id):
        if not turn.is_finished:
            break
        leaf = turn
    return leaf


def create_link(user: AbstractBaseUser, thread: Thread) -> ShareLink:
    """A new link to the thread as it is now. Only its owner makes links. Raises ShareLinkError."""
    if thread.owner_id != user.pk:
        raise ShareLinkError(_("Only the owner of a chat can share it by link."))
    leaf = snapshot_leaf(thread)
    if leaf is None:
        raise ShareLinkError(_("There is no finished answer to share yet."))
    return ShareLink.objects.create(
        thread=thread,
        leaf=leaf,
        title=thread.title,
        created_by=user,
        token=secrets.token_urlsafe(TOKEN_BYTES),
    )


def revoke_link(user: AbstractBaseUser, thread: Thread, link_id: int) -> bool:
    """Delete one of the thread's links (its owner only); False when there was none."""
    if thread.owner_id != user.pk:
        return False
    deleted, _ = ShareLink.objects.filter(thread=thread, pk=link_id).delete()
    return bool(deleted)


def may_open(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated or SiteSettings.load().anonymous_share_links


def link_for(token: str) -> ShareLink | None:
    if not token or len(token) > 64:
        return None
    return ShareLink.objects.filter(token=token).select_related("thread", "created_by").first()


def snapshot(link: ShareLink) -> list[Turn]:
    """The turns the link shows, first to last."""
    return conversation.ThreadTree(link.thread).path(link.leaf_id)


def copy_to_new_thread(user: AbstractBaseUser, link: ShareLink) -> Thread:
    """“Continue in a new chat”: a thread of the viewer's with the snapshot's turns (one path)
    and the shared chat's model, API and parameters (not its tools: those are the owner's)."""
    source = link.thread
    with transaction.atomic():
        thread = Thread.objects.create(
            owner=user,
            title=link.title,
            provider_id=source.provider_id,
            model=source.model,
            api=source.api,
            params=source.params,
        )
        parent = None
        for turn in snapshot(link):
            copy = Turn(thread=thread, parent=parent, author=user)
            for name in _COPIED_FIELDS:
                setattr(copy, name, getattr(turn, name))
            copy.save()
            parent = copy
        thread.current_turn = parent
        thread.save(update_fields=["current_turn"])
    return thread

"""Who may do what with a thread: read it, write in it, or own it (share, rename, delete).

Every view, socket and service asks here; a thread someone may not see is ``None`` (callers
answer 404, so ids leak nothing), one they may only read raises ``ReadOnly``.
"""

from __future__ import annotations

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from chat.models import Access, Thread, ThreadShare
from chat.prepared_reads import PreparedRead
from chat.services.refusals import ReadOnly


class AccessLevel(StrEnum):
    """A user's right to a thread, weakest first: a share's ``Access``, or ownership."""

    READ = Access.READ.value
    COLLABORATE = Access.COLLABORATE.value
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return list(AccessLevel).index(self)

    # Templates read these flags (``thread.access.is_owner``) instead of comparing strings.
    @property
    def is_owner(self) -> bool:
        return self is AccessLevel.OWNER

    @property
    def is_read_only(self) -> bool:
        return self is AccessLevel.READ


def _shares_of(user: AbstractBaseUser) -> QuerySet[ThreadShare]:
    """Shares that reach this user: to them by name, or to a team they belong to."""
    return ThreadShare.objects.filter(Q(user=user) | Q(team__members=user))


def visible_threads(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Thread]:
    """Every thread the user may read: their own and those shared with them or their teams."""
    if not user.is_authenticated:
        return Thread.objects.none()
    shared = _shares_of(user).values("thread_id")
    return Thread.objects.filter(Q(owner=user) | Q(pk__in=shared))


def shared_with(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Thread]:
    """Other people's threads this user may read ("Shared with me")."""
    if not user.is_authenticated:
        return Thread.objects.none()
    return Thread.objects.filter(pk__in=_shares_of(user).values("thread_id")).exclude(owner=user)


def access_level(user: AbstractBaseUser | AnonymousUser, thread: Thread) -> AccessLevel | None:
    """The strongest right the user has to the thread (ownership or any share), or None."""
    if not user.is_authenticated:
        return None
    if thread.owner_id == user.pk:
        return AccessLevel.OWNER
    levels = _shares_of(user).filter(thread=thread).values_list("access", flat=True)
    return max((AccessLevel(level) for level in levels), key=lambda a: a.rank, default=None)


def can_write(level: str | None) -> bool:
    return level in (AccessLevel.OWNER, AccessLevel.COLLABORATE)


# Before every turn: compiled once (chat.prepared_reads).
_THREAD = PreparedRead(
    lambda thread_id: (
        Thread.objects.select_related("provider", "owner").filter(pk=thread_id).order_by()
    ),
    int,
)


def thread_for(user: AbstractBaseUser | AnonymousUser, thread_id: int) -> Thread | None:
    """The thread if this user may see it, else None (callers answer 404: no existence leak).
    The user's right to it is on ``thread.access`` (an ``AccessLevel``)."""
    if not user.is_authenticated:
        return None
    # The same rule as ``visible_threads`` (owner, or a share reaching the user), but the owner's
    # case (every turn sent) is one plain query instead of one with a subquery of shares.
    thread = _THREAD.first(int(thread_id))
    if thread is None:
        return None
    thread.access = access_level(user, thread)
    return thread if thread.access is not None else None


def writable_thread_for(
    user: AbstractBaseUser | AnonymousUser, thread_id: int, *, owner_only: bool = False
) -> Thread | None:
    """The thread if this user may change it (None if they may not see it at all); raises
    ``ReadOnly`` when they may only read it, or only the owner may do this."""
    thread = thread_for(user, thread_id)
    if thread is None:
        return None
    if not can_write(thread.access):
        raise ReadOnly()
    if owner_only and thread.access != AccessLevel.OWNER:
        raise ReadOnly(_("Only the chat's owner can do that."))
    return thread

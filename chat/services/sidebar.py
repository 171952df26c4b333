"""The sidebar: pinned chats, folders, the other chats by date (paged), archived and shared ones.

Pins, folders and the archive organise a user's *own* chats (fields on ``Thread``): only the
owner changes them. Chats shared with a user stay in their "Shared with me" section."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from chat.models import Folder, Thread

PAGE_SIZE = 50
SHARED_LIMIT = 200
_FIELDS = ("pk", "title", "updated_at", "pinned_at", "archived_at", "folder_id", "owner_id")


class BadCursor(ValueError):
    """A paging cursor that this server did not write."""


def date_group(moment: dt.datetime, today: dt.date) -> str:
    """The sidebar heading of a chat last active at ``moment``: Today, Yesterday, Previous 7
    days, else its month ("November 2026"), by the server's local calendar."""
    day = timezone.localtime(moment).date()
    age = (today - day).days
    if age <= 0:
        return _("Today")
    if age == 1:
        return _("Yesterday")
    if age <= 7:
        return _("Previous 7 days")
    return formats.date_format(day, "YEAR_MONTH_FORMAT")  # "November 2026", "2026年11月"


@dataclass
class Row:
    """One sidebar entry; ``heading`` is set on the first chat of each date group."""

    thread: Thread
    heading: str = ""


@dataclass
class Page:
    rows: list[Row] = field(default_factory=list)
    # Where the next page starts ("" when this was the last page).
    next_cursor: str = ""
    last_group: str = ""


def with_urls(threads: list[Thread]) -> list[Thread]:
    """Set ``sidebar_url`` on each chat: one ``reverse`` for the whole list instead of one per
    chat (reversing was most of the cost of a long sidebar)."""
    base = reverse("chat:thread", args=[1]).removesuffix("1/")
    for thread in threads:
        thread.sidebar_url = f"{base}{thread.pk}/"
    return threads


def encode_cursor(thread: Thread) -> str:
    return f"{thread.updated_at.isoformat()}~{thread.pk}"


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    moment, _, pk = cursor.rpartition("~")
    try:
        when = dt.datetime.fromisoformat(moment)
        number = int(pk)
    except ValueError as exc:
        raise BadCursor(cursor) from exc
    if timezone.is_naive(when) or number < 1:
        raise BadCursor(cursor)
    return when, number


def own_chats(user: AbstractBaseUser) -> QuerySet[Thread]:
    return Thread.objects.filter(owner=user).only(*_FIELDS)


def main_chats(user: AbstractBaseUser) -> QuerySet[Thread]:
    """The dated list: neither pinned, archived nor in a folder."""
    return own_chats(user).filter(archived_at=None, folder=None, pinned_at=None)


def folder_chats(folder: Folder) -> QuerySet[Thread]:
    return Thread.objects.filter(folder=folder, archived_at=None, pinned_at=None).only(*_FIELDS)


def archived_chats(user: AbstractBaseUser) -> QuerySet[Thread]:
    return own_chats(user).exclude(archived_at=None)


def page_of(
    chats: QuerySet[Thread],
    cursor: str = "",
    *,
    last_group: str = "",
    grouped: bool = True,
    today: dt.date | None = None,
) -> Page:
    """One page of ``chats``, newest activity first, after ``cursor``. With ``grouped``, a
    heading starts each date group (not repeated when the previous page ended in it)."""
    ordered = chats.order_by("-updated_at", "-pk")
    if cursor:
        when, pk = decode_cursor(cursor)
        ordered = ordered.filter(Q(updated_at__lt=when) | Q(updated_at=when, pk__lt=pk))
    found = with_urls(list(ordered[: PAGE_SIZE + 1]))
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    today = today or timezone.localdate()
    page = Page(last_group=last_group)
    for thread in found:
        row = Row(thread)
        if grouped:
            group = date_group(thread.updated_at, today)
            if group != page.last_group:
                row.heading = page.last_group = group
        page.rows.append(row)
    if more and found:
        page.next_cursor = encode_cursor(found[-1])
    return page


def sidebar_context(user: AbstractBaseUser) -> dict:
    """Everything the sidebar shows on a page load (first pages only)."""
    from chat.services.permissions import shared_with

    # Folders show their size; their chats load when opened (``more_chats``).
    folders = Folder.objects.filter(owner=user).annotate(
        chat_count=Count("threads", filter=Q(threads__archived_at=None, threads__pinned_at=None))
    )
    return {
        "pinned": with_urls(
            list(
                own_chats(user)
                .filter(archived_at=None)
                .exclude(pinned_at=None)
                .order_by("-pinned_at")
            )
        ),
        "folders": list(folders),
        "chat_page": page_of(main_chats(user)),
        "shared_threads": with_urls(
            list(
                shared_with(user)
                .select_related("owner")
                .only("pk", "title", "updated_at", "owner__username")[:SHARED_LIMIT]
            )
        ),
        "has_archived": archived_chats(user).exists(),
    }

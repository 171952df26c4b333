"""Search across the threads a user can see: titles and every turn's message and answer.

Visibility comes from ``permissions.visible_threads`` alone, so a thread someone cannot open never
shows up here. Two queries whatever the number of results: the matching threads (with their
owners), then up to ``MAX_SNIPPETS`` matching turns of each of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from chat.models import Thread, Turn
from chat.services import permissions

MIN_QUERY_CHARS = 2
MAX_QUERY_CHARS = 200
# Words after this many are ignored: each one adds a clause to the query.
MAX_WORDS = 12
MAX_RESULTS = 100
MAX_SNIPPETS = 3
SNIPPET_CHARS = 160
# How much of a snippet comes before its first match (the rest follows it).
_LEAD_CHARS = 50
_ELLIPSIS = "…"


@dataclass(frozen=True)
class Snippet:
    """A piece of one turn around its first match; ``html`` is escaped, matches in <mark>."""

    turn_id: int
    role: str  # "user" (the message) or "assistant" (the answer)
    html: SafeString


@dataclass(frozen=True)
class SearchResult:
    thread_id: int
    title: str
    owner_username: str
    shared: bool  # shared with the user rather than theirs
    updated_at: datetime
    title_html: SafeString
    snippets: list[Snippet] = field(default_factory=list)

    @property
    def url(self) -> str:
        return Thread(pk=self.thread_id).get_absolute_url()


def normalize_query(query: str) -> str:
    """The query as searched: surrounding space removed and capped at ``MAX_QUERY_CHARS``."""
    return (query or "").strip()[:MAX_QUERY_CHARS]


def is_searchable(query: str) -> bool:
    return len(normalize_query(query)) >= MIN_QUERY_CHARS


def query_words(query: str) -> list[str]:
    """The distinct words of a query (case-insensitively), in order; empty if it is too short."""
    query = normalize_query(query)
    if len(query) < MIN_QUERY_CHARS:
        return []
    words: dict[str, str] = {}
    for word in query.split():
        words.setdefault(word.casefold(), word)
    return list(words.values())[:MAX_WORDS]


def search_threads(
    user: AbstractBaseUser | AnonymousUser, query: str, limit: int = 30
) -> list[SearchResult]:
    """Threads the user may read in which every word of ``query`` appears (in the title or in
    any turn's message or answer, on any branch), newest activity first."""
    words = query_words(query)
    limit = max(0, min(limit, MAX_RESULTS))
    if not words or not limit:
        return []

    username_field = get_user_model().USERNAME_FIELD
    threads = permissions.visible_threads(user)
    for word in words:
        in_turn = Turn.objects.filter(thread=OuterRef("pk")).filter(_turn_matches(word))
        threads = threads.filter(Q(title__icontains=word) | Exists(in_turn))
    found = list(
        threads.select_related("owner")
        .only("pk", "title", "updated_at", "owner", f"owner__{username_field}")
        .order_by("-updated_at", "-pk")[:limit]
    )
    if not found:
        return []

    pattern = _pattern(words)
    snippets: dict[int, list[Snippet]] = {thread.pk: [] for thread in found}
    any_word = Q()
    for word in words:
        any_word |= _turn_matches(word)
    turns = (
        Turn.objects.filter(any_word, thread_id__in=snippets)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("thread_id")], order_by=[F("created_at"), F("pk")]
            )
        )
        .filter(rank__lte=MAX_SNIPPETS)
        .only("pk", "thread_id", "user_text", "output_text", "created_at")
        .order_by("thread_id", "created_at", "pk")
    )
    for turn in turns:
        snippet = _turn_snippet(turn, pattern)
        if snippet is not None:
            snippets[turn.thread_id].append(snippet)

    user_pk = getattr(user, "pk", None)
    return [
        SearchResult(
            thread_id=thread.pk,
            title=thread.title,
            owner_username=thread.owner.get_username(),
            shared=thread.owner_id != user_pk,
            updated_at=thread.updated_at,
            title_html=highlight(thread.title, pattern),
            snippets=snippets[thread.pk],
        )
        for thread in found
    ]


def _turn_matches(word: str) -> Q:
    return Q(user_text__icontains=word) | Q(output_text__icontains=word)


def _pattern(words: list[str]) -> re.Pattern[str]:
    # Longest first, so that of two overlapping words the longer one is marked.
    alternatives = sorted({re.escape(w) for w in words}, key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def highlight(text: str, pattern: re.Pattern[str]) -> SafeString:
    """``text`` escaped, with every match of ``pattern`` wrapped in <mark>."""
    parts: list[SafeString] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() == match.end():
            continue
        parts.append(escape(text[position : match.start()]))
        parts.append(format_html("<mark>{}</mark>", match.group()))
        position = match.end()
    parts.append(escape(text[position:]))
    return format_html_join("", "{}", ((part,) for part in parts))


def _turn_snippet(turn: Turn, pattern: re.Pattern[str]) -> Snippet | None:
    """A snippet of the turn's message if it matches, else of its answer."""
    for role, text in (("user", turn.user_text), ("assistant", turn.output_text)):
        html = snippet(text, pattern)
        if html is not None:
            return Snippet(turn_id=turn.pk, role=role, html=html)
    return None


def snippet(text: str, pattern: re.Pattern[str], width: int = SNIPPET_CHARS) -> SafeString | None:
    """About ``width`` characters of ``text`` around its first match, cut at word boundaries
    with "…" where cut, highlighted; None if nothing matches."""
    text = " ".join(text.split())
    first = pattern.search(text)
    if first is None:
        return None
    start = max(0, first.start() - _LEAD_CHARS)
    end = min(len(text), max(start + width, first.end()))
    start = max(0, min(start, end - width))  # near the end: show more before the match
    if start > 0:
        space = text.find(" ", start - 1, first.start())
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", first.end(), end + 1)
        end = space if space != -1 else end
    piece = highlight(text[start:end], pattern)
    return format_html(
        "{}{}{}", _ELLIPSIS if start > 0 else "", piece, _ELLIPSIS if end < len(text) else ""
    )

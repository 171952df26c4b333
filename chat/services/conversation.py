"""Threads and the tree of turns: the sidebar lists, the visible path, branches and presets."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext as _

from chat.models import Attachment, Provider, Thread, Turn
from chat.prepared_reads import PreparedRead
from chat.services.refusals import TurnRejected
from chat.upstream.request import Api, Message, MessageFile

TITLE_LENGTH = 60


def sidebar_lists(user: AbstractBaseUser) -> dict:
    """The sidebar's lists: pinned, folders, dated pages, and chats shared with the user."""
    from chat.services.sidebar import sidebar_context

    return sidebar_context(user)


def title_from(text: str) -> str:
    """A readable title from the first message: its first line, cut at a word boundary."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= TITLE_LENGTH:
        return line or _("New chat")
    return line[:TITLE_LENGTH].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


@dataclass(frozen=True)
class Siblings:
    """Where a turn stands among the answers to the same point of the conversation."""

    position: int  # 1-based
    count: int
    previous_id: int | None
    next_id: int | None


def _turns_of(thread_id: int, *, file_flags: bool) -> QuerySet[Turn]:
    turns = Turn.objects.filter(thread_id=thread_id)
    if file_flags:  # each turn's ``has_files``: whether its message carried files
        sent = Attachment.objects.filter(turn=OuterRef("pk"), from_model=False)
        turns = turns.annotate(has_files=Exists(sent))
    return turns


# Before every turn: compiled once (chat.prepared_reads).
_TURNS = PreparedRead(functools.partial(_turns_of, file_flags=False), int)
_TURNS_WITH_FILE_FLAGS = PreparedRead(functools.partial(_turns_of, file_flags=True), int)


class ThreadTree:
    """All turns of a thread, loaded in one query: the visible path, siblings and leaves."""

    def __init__(self, thread: Thread, *, file_flags: bool = False) -> None:
        self.thread = thread
        turns = (_TURNS_WITH_FILE_FLAGS if file_flags else _TURNS).objects(thread.pk)
        self.turns: dict[int, Turn] = {}
        self.children: dict[int | None, list[Turn]] = {}
        for turn in turns:  # ordered by creation, so siblings are too
            Turn.thread.field.set_cached_value(turn, thread)  # as ``thread.turns.all()`` does
            self.turns[turn.pk] = turn
            self.children.setdefault(turn.parent_id, []).append(turn)

    def path(self, leaf_id: int | None = None) -> list[Turn]:
        """Root first, ending at ``leaf_id`` (default: the thread's current turn)."""
        turn = self.turns.get(leaf_id if leaf_id is not None else self.thread.current_turn_id)
        path: list[Turn] = []
        while turn is not None:
            path.append(turn)
            turn = self.turns.get(turn.parent_id) if turn.parent_id else None
        path.reverse()
        return path

    def page(self, size: int, before_id: int | None = None) -> tuple[list[Turn], bool]:
        """At most ``size`` turns of a path, root side first, and whether earlier ones exist:
        the end of the visible path, or (``before_id``) the ancestors just above that turn,
        which stay the same whichever branch is on screen. Walks only the turns returned."""
        if before_id is None:
            turn = self.turns.get(self.thread.current_turn_id)
        else:
            below = self.turns.get(before_id)
            turn = self.turns.get(below.parent_id) if below and below.parent_id else None
        page: list[Turn] = []
        while turn is not None and len(page) < size:
            page.append(turn)
            turn = self.turns.get(turn.parent_id) if turn.parent_id else None
        page.reverse()
        return page, turn is not None

    def siblings(self, turn: Turn) -> Siblings:
        group = self.children.get(turn.parent_id, [turn])
        index = next(i for i, t in enumerate(group) if t.pk == turn.pk)
        return Siblings(
            position=index + 1,
            count=len(group),
            previous_id=group[index - 1].pk if index > 0 else None,
            next_id=group[index + 1].pk if index + 1 < len(group) else None,
        )

    def leaf(self, turn: Turn) -> Turn:
        """The newest end of the conversation below ``turn``: where switching to it leads."""
        while children := self.children.get(turn.pk):
            turn = children[-1]
        return turn


def siblings_of(turn: Turn) -> Siblings:
    """``ThreadTree(thread).siblings(turn)`` for one turn, without loading the whole thread:
    only the ids of the answers to the same point of the conversation (one small query)."""
    ids = list(
        Turn.objects.filter(thread_id=turn.thread_id, parent_id=turn.parent_id).values_list(
            "pk", flat=True
        )
    )
    index = ids.index(turn.pk) if turn.pk in ids else 0
    return Siblings(
        position=index + 1,
        count=max(len(ids), 1),
        previous_id=ids[index - 1] if index > 0 else None,
        next_id=ids[index + 1] if index + 1 < len(ids) else None,
    )


def thread_path(thread: Thread) -> list[Turn]:
    """The turns from the root to the thread's current turn, loaded in one query."""
    if thread.current_turn_id is None:
        return []
    return ThreadTree(thread).path()


def switch_branch(thread: Thread, turn_id: int) -> bool:
    """Show the branch through ``turn_id`` (down to its newest leaf). False if not in thread."""
    tree = ThreadTree(thread)
    turn = tree.turns.get(turn_id)
    if turn is None:
        return False
    thread.current_turn = tree.leaf(turn)
    thread.save(update_fields=["current_turn", "updated_at"])
    return True


def validate_message(text: str, max_chars: int) -> str:
    text = text.strip()
    if not text:
        raise TurnRejected(_("Type a message first."))
    if len(text) > max_chars:
        raise TurnRejected(
            _("That message is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": f"{len(text):,}", "limit": f"{max_chars:,}"}
        )
    return text


def history(
    path: list[Turn],
    new_text: str,
    files: dict[int, tuple[MessageFile, ...]] | None = None,
    new_files: tuple[MessageFile, ...] = (),
) -> list[Message]:
    """The whole conversation up to the new message, as neutral messages for the upstream;
    each user message with the files it was sent with (``files`` by turn id, read off the
    loop by ``attachments.upstream.load``)."""
    files = files or {}
    messages: list[Message] = []
    for turn in path:
        messages.append(Message("user", turn.user_text, files=files.get(turn.pk, ())))
        if turn.output_text:
            messages.append(Message("assistant", turn.output_text))
    messages.append(Message("user", new_text, files=new_files))
    return messages


def continuation_id(parent: Turn | None) -> str | None:
    """The parent's response id, when the upstream holds that answer whole (not a cut stream)."""
    if parent is None or not parent.response_id:
        return None
    if parent.status == Turn.Status.COMPLETED:
        return parent.response_id
    if parent.status == Turn.Status.INCOMPLETE and not parent.tool_calls:
        # Cut by a token limit: the upstream holds it whole. Cut by the tool-step limit, its last
        # response has calls without outputs, which the upstream refuses to continue from.
        return parent.response_id
    return None


def api_for(thread: Thread, provider: Provider | None) -> Api:
    """The thread's chosen API, else its provider's default, else the Responses API."""
    if thread.api:
        return Api(thread.api)
    return Api(provider.default_api) if provider else Api.RESPONSES


# Async forms for callers on the event loop (consumers, tests).
sync_to_async_path = sync_to_async(thread_path)
sync_to_async_switch = sync_to_async(switch_branch)
sync_to_async_tree = sync_to_async(ThreadTree)

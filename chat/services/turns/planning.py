"""Before a turn starts: check it may (access, quota, a model, nothing else running), create it
and load everything its runner needs, so the runner never touches the ORM."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.models import Attachment, Provider, Thread, ToolDefinition, Turn
from chat.prepared_reads import PreparedRead
from chat.services import (
    conversation,
    parameters,
    permissions,
    providers,
    refusals,
    tool_loop,
    usage,
)
from chat.services.attachments import linking as attachment_linking
from chat.services.mcp import calls as mcp_calls
from chat.services.providers import default_provider
from chat.services.upstream_request import RequestPlan
from chat.upstream.request import Api


@dataclass
class TurnPlan:
    """Everything a runner needs, loaded before the upstream call so it never touches the ORM."""

    turn: Turn
    provider: Provider
    request: RequestPlan
    linear: bool = True  # the turn continues the path on screen (not a new branch)
    # Where the turn stands among its siblings, known when it was created (no turn can be
    # added to the thread while it runs); None: ask the database when rendering.
    siblings: conversation.Siblings | None = None

    @property
    def channel(self) -> str:
        """Where the runner listens for stop and snapshot requests (stored with the turn)."""
        return self.turn.runner_channel


# Before every turn: compiled once (chat.prepared_reads).
_THREAD_TOOLS = PreparedRead(
    lambda thread_id: ToolDefinition.objects.filter(threads=thread_id), int
)


def request_for(turn: Turn, thread: Thread, path: list[Turn], user) -> RequestPlan:
    """What every upstream request of ``turn`` is built from (its first, and after tools)."""
    return RequestPlan(
        api=turn.api,
        model=turn.model,
        params=turn.params,
        path=path,
        user_text=turn.user_text,
        user_tag=parameters.user_identifier(user.pk, settings.SECRET_KEY),
        tools={
            tool.name: tool_loop.ToolSpec(
                tool.name, tool.description, tool.parameters, tool.builtin, tool.mcp_tool_id
            )
            for tool in _THREAD_TOOLS.objects(thread.pk)
        },
        turn_id=turn.pk,
        file_turn_ids=_turns_with_files(path, turn),
        file_parts=turn.api == Api.CHAT and providers.takes_file_parts(turn.provider, turn.model),
    )


def _turns_with_files(path: list[Turn], turn: Turn) -> list[int]:
    """The turns whose files the request reads: those known to have some (a path from a tree
    loaded with ``file_flags``, a turn planned with its files), and any not known."""
    ids = [t.pk for t in path if getattr(t, "has_files", True)]
    if getattr(turn, "attachment_list", True):
        ids.append(turn.pk)
    return ids


def create_turn(
    thread: Thread,
    user,
    *,
    path: list[Turn],
    text: str,
    provider: Provider,
    model: str,
    defaults: dict,
    runner_channel: str,
    compare_group: str = "",
) -> Turn:
    """Create a new turn asking ``text`` at the end of ``path`` (the turns from the root to its
    parent), about to be run by ``runner_channel``.

    ``defaults`` are the staff-set parameters of the model (from ``usage.check_allowed``)."""
    return Turn.objects.create(
        thread=thread,
        parent=path[-1] if path else None,
        author=user,
        user_text=text,
        api=conversation.api_for(thread, provider),
        provider=provider,
        model=model,
        # Staff-set defaults for the model, overridden by what the user set on the thread.
        params={**defaults, **thread.params},
        runner_channel=runner_channel,
        heartbeat_at=timezone.now(),
        compare_group=compare_group,
    )


def _provider_for(thread: Thread) -> Provider:
    provider = (
        thread.provider if thread.provider and thread.provider.enabled else default_provider()
    )
    if provider is None:
        raise refusals.TurnRejected(_("No gateway is configured. Ask an administrator to add one."))
    if not thread.model:
        raise refusals.TurnRejected(_("Pick a model first."))
    return provider


def plan_turn(
    user,
    *,
    thread_id: int,
    text: str,
    channel: str,
    branch_of: int | None = None,
    branch: bool = False,
    attachment_ids: list[uuid.UUID] | None = None,
    files_of: int | None = None,
    new_chat: bool = False,
    thread: Thread | None = None,
) -> TurnPlan:
    """Create the turn: after the current turn, or (``branch``) as a new child of
    ``branch_of`` (None: a new first message). Its runner will listen on ``channel``.
    ``attachment_ids``: the user's unsent files it carries (``new_chat``: uploaded on the
    new-chat page); ``files_of``: a turn whose files it carries again (a new version);
    ``thread``: the thread as the caller loaded it and found it writable in this hop (not
    loaded again). Raises TurnRejected."""
    with transaction.atomic():
        if thread is None:
            thread = permissions.writable_thread_for(user, thread_id)
        if thread is None:
            raise refusals.TurnRejected(_("This chat no longer exists."))
        text = _message_text(text, bool(attachment_ids), files_of)
        # All the thread's turns in one query: whether one is busy, the path to continue and
        # the new turn's siblings.
        tree = conversation.ThreadTree(thread, file_flags=True)
        if any(turn.status in Turn.ACTIVE for turn in tree.turns.values()):
            raise refusals.TurnRejected(_("An answer is still being written. Stop it or wait."))
        provider = _provider_for(thread)
        defaults = usage.check_allowed(user, provider, thread.model)
        leaf = branch_of if branch else thread.current_turn_id
        path = tree.path(leaf) if leaf is not None else []
        if branch and branch_of is not None and not path:
            raise refusals.TurnRejected(_("This message no longer exists."))
        turn = create_turn(
            thread,
            user,
            path=path,
            text=text,
            provider=provider,
            model=thread.model,
            defaults=defaults,
            runner_channel=channel,
        )
        # Kept on the turn: its fragments and its request need them, with no query.
        turn.attachment_list = _files_for(user, thread, turn, attachment_ids, files_of, new_chat)
        linear = thread.current_turn_id == (path[-1].pk if path else None)
        thread.current_turn = turn
        if not path and not branch:
            # A chat that starts with files only is named after the first.
            first_file = turn.attachment_list[0].name if turn.attachment_list else ""
            thread.title = conversation.title_from(text or first_file)
        thread.save(update_fields=["current_turn", "title", "updated_at"])
        tree.turns[turn.pk] = turn
        tree.children.setdefault(turn.parent_id, []).append(turn)
        request = request_for(turn, thread, path, user)
        return TurnPlan(turn, provider, request, linear, tree.siblings(turn))


def plan_branch(user, *, turn_id: int, text: str | None, channel: str) -> TurnPlan:
    """A new sibling of ``turn_id``: its message again (``text`` None) or an edited one."""
    turn = Turn.objects.filter(pk=turn_id).only("thread_id", "parent_id", "user_text").first()
    if turn is None or permissions.thread_for(user, turn.thread_id) is None:
        raise refusals.TurnRejected(_("This message no longer exists."))
    return plan_turn(
        user,
        thread_id=turn.thread_id,
        text=turn.user_text if text is None else text,
        channel=channel,
        branch_of=turn.parent_id,
        branch=True,
        files_of=turn_id,
    )


def _files_for(
    user,
    thread: Thread,
    turn: Turn,
    ids: list[uuid.UUID] | None,
    files_of: int | None,
    new_chat: bool,
) -> list[Attachment]:
    """The new turn's files: the user's unsent ``ids``, or those of ``files_of`` again."""
    if files_of is not None:
        return attachment_linking.copy_to_turn(files_of, turn)
    return attachment_linking.link_to_turn(user, thread, turn, ids or [], new_chat=new_chat)


def _message_text(text: str, attaching: bool, files_of: int | None) -> str:
    """The message checked; one with files may have no text. Raises TurnRejected."""
    has_files = attaching or (
        files_of is not None
        and Attachment.objects.filter(turn_id=files_of, from_model=False).exists()
    )
    if has_files and not text.strip():
        return ""
    return conversation.validate_message(text, settings.MAX_MESSAGE_CHARS)


def record_tool_answer(
    user, *, turn_id: int, call_id: str, result: str | None, channel: str
) -> TurnPlan | None:
    """Store the user's result for a call (``None`` rejects it). Once every call of the step
    is answered, the turn runs again (on ``channel``): its plan; None while some still wait.
    Raises TurnRejected."""
    with transaction.atomic():
        turn = Turn.objects.select_for_update().filter(pk=turn_id).first()
        thread = permissions.writable_thread_for(user, turn.thread_id) if turn else None
        if thread is None:
            raise refusals.TurnRejected(_("This message no longer exists."))
        if turn.status != Turn.Status.AWAITING_TOOL:
            raise refusals.TurnRejected(_("This tool call was already answered."))
        step = tool_loop.last_step(turn.tool_calls)
        call = next((c for c in step if c["call_id"] == call_id), None)
        if call is None or call["status"] != "awaiting":
            raise refusals.TurnRejected(_("This tool call was already answered."))
        if result is not None and len(result) > settings.MAX_MESSAGE_CHARS:
            raise refusals.TurnRejected(_("That result is too long."))
        if not mcp_calls.answer_approval(call, result):  # Approve/Reject of an MCP call
            tool_loop.answer(call, result)
        if any(c["status"] == "awaiting" for c in step):
            turn.save(update_fields=["tool_calls"])
            return None
        turn.status = Turn.Status.IN_PROGRESS
        turn.runner_channel, turn.heartbeat_at = channel, timezone.now()
        turn.save(update_fields=["tool_calls", "status", "runner_channel", "heartbeat_at"])
        path = conversation.ThreadTree(thread).path(turn.parent_id) if turn.parent_id else []
        request = request_for(turn, thread, path, user)
        return TurnPlan(turn=turn, provider=turn.provider or default_provider(), request=request)

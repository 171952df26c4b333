"""Import chats: a ChatGPT data export (``conversations.json``, or the zip holding it) or
Switchboard's own JSON export (chat/export.py), as threads of the importing user.

Everything is read and checked before anything is written, and written in one transaction: a
refused file leaves nothing behind. Refusals are ``ImportRefused`` with a message for the user.

ChatGPT's export is a list of conversations, each a ``mapping`` of nodes (``message``,
``parent``, ``children``) and a ``current_node``. A Switchboard turn is a user message and the
answer to it, so: each user node starts a turn; each child of a user node is one answer (two
children are two versions: sibling turns); along an answer, system and tool nodes are skipped
and the assistant's texts joined; a user node found below an answer is a turn after it (edited
messages are sibling user nodes: sibling turns). Images are asset pointers, kept as a note.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils.translation import gettext as _

from chat import export
from chat.models import TURN_USAGE_FIELDS, Thread, ToolDefinition, Turn
from chat.upstream.request import Api

# A zip from ChatGPT holds this file (and the images, which are not imported).
CONVERSATIONS_FILE = "conversations.json"
MAX_TITLE = 200
_TURN_STATUSES = {value for value, _ in Turn.Status.choices} - set(Turn.ACTIVE)
_APIS = {value for value, _ in Api.choices()}


class ImportRefused(ValueError):
    """A file that cannot be imported; the message says why. Nothing was written."""


@dataclass
class TurnData:
    key: str
    parent: str | None
    user_text: str
    output_text: str = ""
    reasoning_text: str = ""
    status: str = Turn.Status.COMPLETED
    error: str = ""
    model: str = ""
    api: str = Api.RESPONSES
    params: dict = field(default_factory=dict)
    tool_calls: list = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    created_at: datetime.datetime | None = None


@dataclass
class ThreadData:
    title: str
    turns: list[TurnData]  # parents before children
    current: str | None
    model: str = ""
    api: str = ""
    params: dict = field(default_factory=dict)
    tools: list[str] = field(default_factory=list)
    created_at: datetime.datetime | None = None


# -- reading the file ----------------------------------------------------------------------------


def read_upload(upload: IO[bytes], size: int, limit: int | None = None) -> Any:
    """The JSON document of an uploaded file (plain JSON or a zip holding conversations.json).
    Raises ImportRefused for a file over the limit, a broken zip or invalid JSON."""
    limit = limit or settings.IMPORT_MAX_BYTES
    if size > limit:
        raise ImportRefused(
            _("The file is too large: the limit is %(limit)s.") % {"limit": _megabytes(limit)}
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise ImportRefused(
            _("The file is too large: the limit is %(limit)s.") % {"limit": _megabytes(limit)}
        )
    if data[:4] == b"PK\x03\x04":
        data = _conversations_in_zip(data, limit)
    try:
        return json.loads(data)
    except RecursionError:
        raise ImportRefused(_("The file is nested too deeply to be read.")) from None
    except (UnicodeDecodeError, ValueError):
        raise ImportRefused(
            _(
                "This file is not JSON. Upload conversations.json (or the zip of a ChatGPT data "
                "export) or a chat exported from Switchboard as .json."
            )
        ) from None


def _conversations_in_zip(data: bytes, limit: int) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == CONVERSATIONS_FILE]
            if not names:
                raise ImportRefused(
                    _("The zip has no %(conversations_file)s.")
                    % {"conversations_file": CONVERSATIONS_FILE}
                )
            info = archive.getinfo(min(names, key=len))
            # The size in the header can lie: read at most one byte past the limit.
            if info.file_size > limit:
                raise ImportRefused(
                    _("%(conversations_file)s is too large: the limit is %(limit)s.")
                    % {"conversations_file": CONVERSATIONS_FILE, "limit": _megabytes(limit)}
                )
            with archive.open(info) as member:
                content = member.read(limit + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError):
        raise ImportRefused(_("The zip file is damaged or uses an unsupported format.")) from None
    if len(content) > limit:
        raise ImportRefused(
            _("%(conversations_file)s is too large: the limit is %(limit)s.")
            % {"conversations_file": CONVERSATIONS_FILE, "limit": _megabytes(limit)}
        )
    return content


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:g} MB"


def parse(document: Any) -> list[ThreadData]:
    """The threads in a parsed file. Raises ImportRefused."""
    if isinstance(document, dict) and document.get("format") == export.FORMAT:
        return [_switchboard_thread(document)]
    if isinstance(document, dict) and "mapping" in document:
        document = [document]  # one conversation on its own
    if isinstance(document, list) and all(
        isinstance(item, dict) and "mapping" in item for item in document
    ):
        threads = [_chatgpt_thread(item, index) for index, item in enumerate(document, start=1)]
        threads = [thread for thread in threads if thread.turns]
        if not threads:
            raise ImportRefused(_("The export holds no conversation with a message in it."))
        return threads
    raise ImportRefused(
        _(
            "This is neither a ChatGPT export (conversations.json) nor a chat exported from "
            "Switchboard as .json."
        )
    )


# -- ChatGPT -------------------------------------------------------------------------------------


def _timestamp(value: Any) -> datetime.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _role(node: dict) -> str:
    message = node.get("message")
    if not isinstance(message, dict):
        return ""
    author = message.get("author")
    return author.get("role", "") if isinstance(author, dict) else ""


def _hidden(node: dict) -> bool:
    metadata = node["message"].get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("is_visually_hidden_from_conversation"))


def _image_note(part: dict) -> str:
    pointer = str(part.get("asset_pointer", "")).rsplit("/", 1)[-1]
    size = ""
    if isinstance(part.get("width"), int) and isinstance(part.get("height"), int):
        size = f", {part['width']} by {part['height']} pixels"
    return f"[Image {pointer}{size}: not included in the import]"


def _text_of(message: dict, where: str) -> tuple[str, str]:
    """(text, reasoning) of one message's ``content``."""
    content = message.get("content")
    if not isinstance(content, dict):
        raise ImportRefused(_("%(where)s: a message has no content.") % {"where": where})
    kind = content.get("content_type", "text")
    if kind in ("text", "multimodal_text"):
        parts = content.get("parts", [])
        if not isinstance(parts, list):
            raise ImportRefused(
                _("%(where)s: a message's parts are not a list.") % {"where": where}
            )
        texts = []
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and "asset_pointer" in part:
                texts.append(_image_note(part))
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n\n".join(t for t in texts if t), ""
    if kind == "code":  # code the assistant ran (code interpreter): shown as a code block
        text = content.get("text", "")
        language = content.get("language", "")
        language = language if isinstance(language, str) and language != "unknown" else ""
        return (f"```{language}\n{text}\n```" if isinstance(text, str) and text else ""), ""
    if kind == "thoughts":
        thoughts = content.get("thoughts", [])
        if isinstance(thoughts, list):
            texts = [t.get("content", "") for t in thoughts if isinstance(t, dict)]
            return "", "\n\n".join(t for t in texts if isinstance(t, str) and t)
    return "", ""  # browsing displays, quotes, recaps…: not part of the conversation


def _chatgpt_thread(conversation: dict, index: int) -> ThreadData:
    title = conversation.get("title")
    title = title.strip()[:MAX_TITLE] if isinstance(title, str) and title.strip() else ""
    if title:
        where = _("Conversation %(index)s (“%(title)s”)") % {"index": index, "title": title}
    else:
        where = _("Conversation %(index)s") % {"index": index}
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict) or not all(isinstance(n, dict) for n in mapping.values()):
        raise ImportRefused(_("%(where)s: its mapping is not a set of nodes.") % {"where": where})
    turns, owner = _chatgpt_turns(mapping, where)
    _check_size(where, turns)
    return ThreadData(
        title=title or (turns[0].user_text[:60] if turns else "") or _("Imported chat"),
        turns=turns,
        current=_chatgpt_current(mapping, owner, conversation.get("current_node")),
        model=next((t.model for t in reversed(turns) if t.model), ""),
        created_at=_timestamp(conversation.get("create_time")),
    )


def _children(mapping: dict, node_id: str, where: str) -> list[str]:
    found = mapping[node_id].get("children", [])
    if not isinstance(found, list):
        raise ImportRefused(_("%(where)s: a node's children are not a list.") % {"where": where})
    return [child for child in found if isinstance(child, str) and child in mapping]


def _chatgpt_turns(mapping: dict, where: str) -> tuple[list[TurnData], dict[str, str]]:
    """The turns of a conversation's node tree, parents first, and the key of the turn each
    node belongs to."""
    roots = [
        key
        for key, node in mapping.items()
        if node.get("parent") is None or node.get("parent") not in mapping
    ]
    turns: list[TurnData] = []
    owner: dict[str, str] = {}  # node id → key of the turn it belongs to
    seen: set[str] = set()
    # (node id, key of the turn above it, the turn being answered or None)
    stack: list[tuple[str, str | None, TurnData | None]] = [
        (r, None, None) for r in reversed(roots)
    ]
    while stack:
        node_id, above, answering = stack.pop()
        if node_id in seen:
            raise ImportRefused(_("%(where)s: its nodes form a loop.") % {"where": where})
        seen.add(node_id)
        node = mapping[node_id]
        role = _role(node)
        message = node.get("message")
        if role == "user" and not _hidden(node):
            text, _images = _text_of(message, where)
            kids = _children(mapping, node_id, where)
            answers = _asked(node_id, above, text, message, other_answers=kids[1:])
            turns.extend(answers)
            owner[node_id] = node_id
            for child, answer in reversed(list(zip(kids, answers, strict=False))):
                stack.append((child, answer.key, answer))
            continue
        if answering is not None:
            owner[node_id] = answering.key
            if role == "assistant" and isinstance(message, dict):
                _add_answer(answering, message, where)
        # System, tool and hidden nodes, and the rest of an answer: go on below.
        for child in reversed(_children(mapping, node_id, where)):
            stack.append((child, answering.key if answering else above, answering))
    # ``turns`` lists parents first: a turn is listed when its user node is reached, and the
    # nodes below it are reached after.
    return turns, owner


def _asked(
    node_id: str, above: str | None, text: str, message: dict, *, other_answers: list[str]
) -> list[TurnData]:
    """The turns of one user message: the first keyed by the node itself, then one sibling turn
    with the same message per node in ``other_answers`` (ChatGPT's regenerated answers)."""
    turn = TurnData(
        key=node_id,
        parent=above,
        user_text=text,
        status=Turn.Status.INCOMPLETE,  # until an answer is found
        created_at=_timestamp(message.get("create_time")),
    )
    return [turn] + [
        TurnData(
            key=f"{node_id}:{child}",
            parent=above,
            user_text=text,
            status=Turn.Status.INCOMPLETE,
            created_at=turn.created_at,
        )
        for child in other_answers
    ]


def _add_answer(answering: TurnData, message: dict, where: str) -> None:
    """Append one assistant message to the answer of ``answering``."""
    text, reasoning = _text_of(message, where)
    answering.output_text = "\n\n".join(t for t in (answering.output_text, text) if t)
    answering.reasoning_text = "\n\n".join(t for t in (answering.reasoning_text, reasoning) if t)
    metadata = message.get("metadata")
    slug = metadata.get("model_slug") if isinstance(metadata, dict) else None
    if isinstance(slug, str):
        answering.model = slug[:200]
    if text:
        answering.status = Turn.Status.COMPLETED


def _chatgpt_current(mapping: dict, owner: dict[str, str], current: object) -> str | None:
    """The turn of the conversation's current node, or of its nearest ancestor in a turn."""
    current_key = None
    while isinstance(current, str) and current in mapping and current_key is None:
        current_key = owner.get(current)
        current = mapping[current].get("parent")
    return current_key


def _check_size(where: str, turns: list[TurnData]) -> None:
    if len(turns) > MAX_TURNS_PER_CHAT:
        raise ImportRefused(
            _("%(where)s has more than %(limit)s messages.")
            % {"where": where, "limit": f"{MAX_TURNS_PER_CHAT:,}"}
        )


MAX_TURNS_PER_CHAT = 20_000


# -- Switchboard's own export --------------------------------------------------------------------


def _string(item: dict, name: str, where: str, default: str = "") -> str:
    value = item.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ImportRefused(
            _("%(where)s: “%(name)s” is not text.") % {"where": where, "name": name}
        )
    return value


def _switchboard_turn(entry: dict, here: str, *, key: str, parent: str | None) -> TurnData:
    """One turn of Switchboard's export, its fields checked."""
    status = _string(entry, "status", here, Turn.Status.COMPLETED)
    if status not in _TURN_STATUSES:
        status = Turn.Status.INTERRUPTED  # was running when exported
    usage = entry.get("usage") or {}
    tool_calls = entry.get("tool_calls") or []
    if not isinstance(usage, dict) or not isinstance(tool_calls, list):
        raise ImportRefused(_("%(here)s: its usage or tool calls are malformed.") % {"here": here})
    return TurnData(
        key=key,
        parent=parent,
        user_text=_string(entry, "user", here),
        output_text=_string(entry, "answer", here),
        reasoning_text=_string(entry, "reasoning", here),
        status=status,
        error=_string(entry, "error", here),
        model=_string(entry, "model", here)[:200],
        api=_api(_string(entry, "api", here)) or Api.RESPONSES,
        params=params_of(entry, here),
        tool_calls=tool_calls,
        usage={
            name: value
            for name, value in usage.items()
            if name in TURN_USAGE_FIELDS and isinstance(value, int) and 0 <= value < 2**31
        },
        created_at=_iso(entry.get("created_at")),
    )


def _switchboard_thread(document: dict) -> ThreadData:
    where = _("The chat")
    entries = document.get("tree")
    linear = entries is None  # an export from before branches were exported: the path only
    if linear:
        entries = document.get("turns")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ImportRefused(_("%(where)s: its turns are not a list.") % {"where": where})
    turns: list[TurnData] = []
    keys: set[str] = set()
    previous = None
    for position, entry in enumerate(entries, start=1):
        here = _("%(where)s, turn %(position)s") % {"where": where, "position": position}
        key = str(entry.get("id", position)) if not linear else str(position)
        parent = previous if linear else entry.get("parent")
        parent = None if parent is None else str(parent)
        if parent is not None and parent not in keys:
            raise ImportRefused(_("%(here)s: its parent is not an earlier turn.") % {"here": here})
        if key in keys:
            raise ImportRefused(_("%(here)s: its id is used twice.") % {"here": here})
        turns.append(_switchboard_turn(entry, here, key=key, parent=parent))
        keys.add(key)
        previous = key
    _check_size(where, turns)
    current = document.get("current")
    current = str(current) if current is not None and str(current) in keys else previous
    params = document.get("params") or {}
    tools = document.get("tools") or []
    if not isinstance(params, dict) or not isinstance(tools, list):
        raise ImportRefused(_("%(where)s: its settings are malformed.") % {"where": where})
    title = _string(document, "title", where).strip()[:MAX_TITLE] or _("Imported chat")
    return ThreadData(
        title=title,
        turns=turns,
        current=current,
        model=_string(document, "model", where)[:200],
        api=_api(_string(document, "api", where)),
        params=params,
        tools=[name for name in tools if isinstance(name, str)],
        created_at=_iso(document.get("created_at")),
    )


def params_of(entry: dict, where: str) -> dict:
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise ImportRefused(_("%(where)s: its parameters are malformed.") % {"where": where})
    return params


def _api(value: str) -> str:
    return value if value in _APIS else ""


def _iso(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


# -- writing -------------------------------------------------------------------------------------


def save(user: AbstractBaseUser, threads: list[ThreadData]) -> list[Thread]:
    """Create the threads and their turns, all or nothing. Turns are inserted a tree level at a
    time across all threads (a parent has its id before its children are inserted): a few dozen
    bulk INSERTs for a whole export instead of one per message."""
    with transaction.atomic():
        created = Thread.objects.bulk_create(
            Thread(owner=user, title=d.title, model=d.model, api=d.api, params=d.params)
            for d in threads
        )
        levels: list[list[tuple[int, TurnData]]] = []
        for index, data in enumerate(threads):
            depth: dict[str, int] = {}
            for item in data.turns:  # parents first
                level = depth[item.parent] + 1 if item.parent is not None else 0
                depth[item.key] = level
                if level == len(levels):
                    levels.append([])
                levels[level].append((index, item))
        stored: dict[tuple[int, str], Turn] = {}
        dated: list[Turn] = []
        for level in levels:
            turns = [_new_turn(user, created[i], stored, i, item) for i, item in level]
            Turn.objects.bulk_create(turns, batch_size=500)
            for (index, item), turn in zip(level, turns, strict=True):
                stored[(index, item.key)] = turn
                if item.created_at is not None:  # the original time (auto_now_add set now)
                    turn.created_at = item.created_at
                    dated.append(turn)
        _restore_times(dated)
        for index, (thread, data) in enumerate(zip(created, threads, strict=True)):
            thread.current_turn = stored.get((index, data.current)) if data.current else None
            thread.created_at = data.created_at or thread.created_at
            if data.tools:
                thread.tools.set(ToolDefinition.objects.filter(owner=user, name__in=data.tools))
        Thread.objects.bulk_update(created, ["current_turn", "created_at"], batch_size=500)
    return created


def _restore_times(turns: list[Turn]) -> None:
    """Write back each turn's original ``created_at`` (``auto_now_add`` set it to now on insert):
    one prepared UPDATE run for all rows; ``bulk_update``'s CASE expressions took seconds."""
    if not turns:
        return
    table = connection.ops.quote_name(Turn._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET created_at = %s WHERE id = %s",
            [(adapt(turn.created_at), turn.pk) for turn in turns],
        )


def _new_turn(
    user: AbstractBaseUser,
    thread: Thread,
    stored: dict[tuple[int, str], Turn],
    index: int,
    item: TurnData,
) -> Turn:
    return Turn(
        thread=thread,
        parent=stored[(index, item.parent)] if item.parent is not None else None,
        author=user,
        user_text=item.user_text,
        output_text=item.output_text,
        reasoning_text=item.reasoning_text,
        status=item.status,
        error=item.error,
        model=item.model,
        api=item.api,
        params=item.params,
        tool_calls=item.tool_calls,
        finished_at=item.created_at,
        **item.usage,
    )


def import_upload(user: AbstractBaseUser, upload: IO[bytes], size: int) -> list[Thread]:
    """Read, check and save an uploaded file. Raises ImportRefused (then nothing is saved)."""
    return save(user, parse(read_upload(upload, size)))

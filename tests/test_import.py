"""Import (issue 19): a real-shaped ChatGPT export (branches, code, an image reference), its zip,
Switchboard's own export round trip, and refused files that leave nothing behind."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat import export
from chat.models import Thread, ToolDefinition, Turn
from chat.services import conversation

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "chatgpt_conversations.json"


def client_of(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def upload(user, name: str, content: bytes):
    return client_of(user).post("/import/", {"file": SimpleUploadedFile(name, content)})


def tree_of(thread: Thread) -> list[tuple]:
    """(parent's user text, user text, answer, model) of every turn, in order."""
    return [
        (
            turn.parent.user_text if turn.parent else None,
            turn.user_text,
            turn.output_text,
            turn.model,
        )
        for turn in thread.turns.select_related("parent").order_by("created_at", "pk")
    ]


def test_a_chatgpt_export_keeps_branches_code_and_notes_images(user):
    response = upload(user, "conversations.json", FIXTURE.read_bytes())
    assert "Imported 2 chats" in response.content.decode()

    sorting = Thread.objects.get(owner=user, title="Sorting dicts in Python")
    turns = list(sorting.turns.order_by("created_at", "pk"))
    question = "How do I sort a list of dicts by a key?"
    first, regenerated = [t for t in turns if t.user_text == question]
    # Two answers to the first message (a regeneration): two sibling turns.
    assert first.parent is None and regenerated.parent is None
    assert first.model == "gpt-4o" and regenerated.model == "gpt-4o-mini"
    assert '```python\npeople = [{"name": "Ann"' in first.output_text
    assert regenerated.output_text.startswith("Call `list.sort(key=...)`")
    # An edited second message: two sibling turns under the first answer.
    edits = [t for t in turns if t.parent_id == first.pk]
    assert [t.user_text for t in edits] == [
        "And in reverse?",
        "And in descending order of age, ties by name?",
    ]
    assert edits[0].output_text == "Pass `reverse=True`."
    # The hidden system message is not a turn; the chat opens where ChatGPT was.
    assert len(turns) == 4
    assert [t.pk for t in conversation.thread_path(sorting)] == [first.pk, edits[1].pk]
    assert all(t.status == Turn.Status.COMPLETED for t in turns)

    chart = Thread.objects.get(owner=user, title="Chart from a photo")
    (turn,) = chart.turns.all()
    assert turn.user_text.startswith("[Image file-7Qx2LmN4pRs8TvWy, 1536 by 1152 pixels")
    assert turn.user_text.endswith("What is the total of the bars in this chart?")
    # The code the assistant ran is a code block; the tool's output is not part of the answer.
    assert turn.output_text == (
        "```python\nbars = [12, 7, 30]\nsum(bars)\n```\n\nThe bars add up to **49**."
    )
    # It renders on the page, code highlighted.
    page = client_of(user).get(f"/t/{chart.pk}/").content.decode()
    assert "The bars add up to" in page and "<pre" in page


def test_the_zip_of_a_chatgpt_export(user):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("chat.html", "<html></html>")
        zipped.writestr("conversations.json", FIXTURE.read_bytes())
        zipped.writestr("file-7Qx2LmN4pRs8TvWy.png", b"\x89PNG")
    upload(user, "export.zip", archive.getvalue())
    assert Thread.objects.filter(owner=user).count() == 2


def test_switchboard_export_round_trip(user, other_user, make_thread):
    tool = ToolDefinition.objects.create(owner=user, name="lookup", parameters={"type": "object"})
    ToolDefinition.objects.create(owner=other_user, name="lookup", parameters={"type": "object"})
    thread = make_thread(user, title="Round trip")
    thread.api, thread.params = "chat", {"temperature": 0.3}
    thread.save()
    thread.tools.add(tool)
    root = Turn.objects.create(
        thread=thread,
        author=user,
        user_text="Hi",
        output_text="Hello",
        status="completed",
        model="demo-chat",
        api="chat",
        params={"temperature": 0.3},
        input_tokens=5,
        output_tokens=2,
        total_tokens=7,
        tool_calls=[
            {
                "call_id": "c1",
                "name": "lookup",
                "arguments": "{}",
                "result": "42",
                "status": "done",
                "step": 0,
            }
        ],
    )
    Turn.objects.create(
        thread=thread,
        parent=root,
        author=user,
        user_text="A",
        output_text="a",
        status="completed",
        model="demo-chat",
    )
    chosen = Turn.objects.create(
        thread=thread,
        parent=root,
        author=user,
        user_text="B",
        output_text="",
        status="failed",
        error="upstream 500",
        model="demo-reasoner",
        reasoning_text="hmm",
    )
    thread.current_turn = chosen
    thread.save()

    exported = client_of(user).get(f"/t/{thread.pk}/export.json").content
    upload(other_user, "round-trip.json", exported)
    copy = Thread.objects.get(owner=other_user)

    assert (copy.title, copy.api, copy.params, copy.model) == (
        "Round trip",
        "chat",
        {"temperature": 0.3},
        "demo-chat",
    )
    assert [t.name for t in copy.tools.all()] == ["lookup"]  # the importer's own tool
    assert copy.tools.get().owner == other_user
    assert tree_of(copy) == tree_of(thread)
    fields = (
        "status",
        "error",
        "reasoning_text",
        "tool_calls",
        "api",
        "params",
        "input_tokens",
        "output_tokens",
        "total_tokens",
    )
    for original, imported in zip(
        thread.turns.order_by("created_at", "pk"),
        copy.turns.order_by("created_at", "pk"),
        strict=True,
    ):
        assert [getattr(imported, f) for f in fields] == [getattr(original, f) for f in fields]
        assert imported.created_at == original.created_at
    assert copy.current_turn.user_text == "B"
    # Exporting the copy gives the same document (ids and response ids aside).
    again = json.loads(client_of(other_user).get(f"/t/{copy.pk}/export.json").content)
    first = json.loads(exported)

    def comparable(document):
        return [{k: v for k, v in t.items() if k not in ("id", "parent")} for t in document["tree"]]

    assert comparable(again) == comparable(first)
    assert again["format"] == export.FORMAT


BROKEN = [
    (b"{not json", "not JSON"),
    (b'{"hello": "world"}', "neither a ChatGPT export"),
    (
        b'[{"title": "x", "mapping": {"a": {"message": {"author": {"role": "user"}, "content": 5}, '
        b'"parent": null, "children": []}}}]',
        "a message has no content",
    ),
    (
        b'[{"title": "x", "mapping": {"a": {"message": null, "parent": "b", "children": ["b"]}, '
        b'"b": {"message": null, "parent": "a", "children": ["a"]}}}]',
        "no conversation",
    ),
    (
        json.dumps(
            {
                "format": "switchboard",
                "title": "t",
                "tree": [
                    {"id": 1, "parent": None, "user": "ok", "answer": "fine"},
                    {"id": 2, "parent": 99, "user": "orphan"},
                ],
            }
        ).encode(),
        "parent is not an earlier turn",
    ),
    (
        json.dumps({"format": "switchboard", "tree": [{"id": 1, "user": ["x"]}]}).encode(),
        "is not text",
    ),
]


@pytest.mark.parametrize(("content", "message"), BROKEN)
def test_malformed_files_are_refused_and_nothing_is_created(user, content, message):
    # A good conversation first in the same file must not survive a bad one after it.
    response = upload(user, "conversations.json", content)
    assert message in response.content.decode()
    assert not Thread.objects.exists() and not Turn.objects.exists()


def test_a_bad_conversation_after_a_good_one_imports_nothing(user):
    good = json.loads(FIXTURE.read_bytes())
    bad = {"title": "Broken", "mapping": {"r": {"message": None, "parent": None, "children": 7}}}
    response = upload(user, "conversations.json", json.dumps([*good, bad]).encode())
    assert "children are not a list" in response.content.decode()
    assert not Thread.objects.exists() and not Turn.objects.exists()


def test_a_file_over_the_limit_is_refused(user, settings):
    settings.IMPORT_MAX_BYTES = 2000
    response = upload(user, "conversations.json", FIXTURE.read_bytes())
    assert "The file is too large: the limit is" in response.content.decode()
    assert not Thread.objects.exists()


def test_a_zip_bomb_is_refused_by_its_uncompressed_size(user, settings):
    settings.IMPORT_MAX_BYTES = 100_000
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("conversations.json", b"[" + b" " * 5_000_000 + b"]")
    assert len(archive.getvalue()) < 100_000
    response = upload(user, "export.zip", archive.getvalue())
    assert "conversations.json is too large" in response.content.decode()
    assert not Thread.objects.exists()

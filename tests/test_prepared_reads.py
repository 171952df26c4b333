"""The reads a turn makes before its request leaves, compiled once (chat.prepared_reads): they
read exactly what the ORM reads, on SQLite and PostgreSQL (make test-scaleout)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from chat.models import Attachment, ModelSetting, Thread, ToolDefinition, Turn
from chat.prepared_reads import PreparedRead
from chat.services import conversation, permissions, quotas
from chat.services.turns import planning

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


@pytest.fixture
def conversation_thread(make_thread, user) -> Thread:
    """A thread with a branch, parameters, a tool and a message that carried a file."""
    thread = make_thread(user)
    thread.params = {"temperature": 0.3, "reasoning": {"effort": "low"}}
    thread.save()
    first = Turn.objects.create(
        thread=thread, author=user, user_text="first", output_text="one", params={"top_p": 0.5}
    )
    second = Turn.objects.create(thread=thread, parent=first, author=user, user_text="second")
    Turn.objects.create(thread=thread, parent=first, author=user, user_text="second, again")
    Attachment.objects.create(
        owner=user, thread=thread, turn=second, kind="text", name="notes.txt", size=5,
        content_type="text/plain", sha256="0" * 64, file="notes.txt",
    )  # fmt: skip
    thread.current_turn = second
    thread.save()
    tool = ToolDefinition.objects.create(
        owner=user, name="lookup", description="Looks up", parameters={"type": "object"}
    )
    thread.tools.add(tool)
    return thread


def test_a_thread_is_read_with_its_provider_and_owner_as_the_orm_reads_them(
    conversation_thread, user
):
    expected = Thread.objects.select_related("provider", "owner").get(pk=conversation_thread.pk)
    thread = permissions.thread_for(user, conversation_thread.pk)
    with CaptureQueriesContext(connection) as queries:
        assert _fields(thread) == _fields(expected)
        assert _fields(thread.provider) == _fields(expected.provider)
        assert _fields(thread.owner) == _fields(expected.owner)
    assert not queries.captured_queries  # loaded with the thread, not afterwards
    assert thread.params == {"temperature": 0.3, "reasoning": {"effort": "low"}}
    assert thread.created_at.tzinfo is not None


def test_a_threads_turns_are_read_in_order_with_their_file_flags(conversation_thread):
    tree = conversation.ThreadTree(conversation_thread, file_flags=True)
    expected = list(Turn.objects.filter(thread=conversation_thread).order_by("created_at", "pk"))
    assert [_fields(turn) for turn in tree.turns.values()] == [_fields(t) for t in expected]
    assert [bool(turn.has_files) for turn in tree.turns.values()] == [False, True, False]
    with CaptureQueriesContext(connection) as queries:
        path = tree.path()
        assert [turn.user_text for turn in path] == ["first", "second"]
        assert path[0].thread is conversation_thread
    assert not queries.captured_queries
    assert tree.siblings(path[1]).count == 2
    assert path[0].params == {"top_p": 0.5}


def test_a_turns_request_offers_the_threads_tools(conversation_thread, user):
    path = conversation.ThreadTree(conversation_thread).path()
    request = planning.request_for(path[-1], conversation_thread, path, user)
    assert list(request.tools) == ["lookup"]
    assert request.tools["lookup"].parameters == {"type": "object"}


def test_the_model_settings_staff_set_are_read_with_their_types(provider, user):
    ModelSetting.objects.create(
        provider=provider, model="demo-chat", enabled=False, default_params={"temperature": 1}
    )
    situation = quotas._situation(user, provider, "demo-chat")
    assert situation["model_enabled"] is False
    assert situation["model_defaults"] == {"temperature": 1}
    assert quotas._situation(user, provider, "another-model")["model_enabled"] is None


def test_a_read_is_compiled_once_and_then_only_run(conversation_thread, user, monkeypatch):
    read = PreparedRead(lambda thread_id: Turn.objects.filter(thread_id=thread_id), int)
    assert len(read.objects(conversation_thread.pk)) == 3
    compiled = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1) or original(self, *a, **k)
    )
    with CaptureQueriesContext(connection) as queries:
        assert read.objects(conversation_thread.pk + 1000) == []
        assert len(read.objects(conversation_thread.pk)) == 3
    assert len(queries.captured_queries) == 2
    assert compiled == []


def test_an_id_no_database_column_can_hold_finds_nothing(user):
    assert permissions.thread_for(user, 10**30) is None  # not an OverflowError


def test_an_argument_django_would_rewrite_cannot_be_prepared(conversation_thread):
    # A ``contains`` lookup sends "%…%", not the argument: the SQL has no place for it.
    read = PreparedRead(lambda text: Turn.objects.filter(user_text__contains=text), str)
    with pytest.raises(TypeError, match="not parameters"):
        read.rows("second")


def test_arguments_of_another_type_are_refused(conversation_thread):
    read = PreparedRead(lambda thread_id: Turn.objects.filter(thread_id=thread_id), int)
    with pytest.raises(TypeError):
        read.objects(str(conversation_thread.pk))

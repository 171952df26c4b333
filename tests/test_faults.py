"""Faults around the end of a turn: its chat deleted while it streams, the database unreachable
when it ends, its worker gone. What the viewers saw is stored and what was spent is counted,
exactly once.

The in-process outage (``database_down``) makes every query of this process fail the way an
unreachable server does (the driver's ``OperationalError``, through Django's error wrapper); on
PostgreSQL, ``test_a_real_postgresql_outage_at_the_end_of_an_answer_loses_nothing`` stops the
test database itself for a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.db import InterfaceError, OperationalError, connections
from django.db.backends.utils import CursorWrapper
from django.urls import reverse

from chat.models import Thread, Turn, UsageRecord
from chat.services import quotas, usage
from chat.services.turns import launch, registry, store
from chat.services.turns.runner import TurnRunner
from chat.upstream.events import Usage
from tests.test_multiprocess import (  # the multi-process tests' helpers
    LONG_WORDS,
    NEW_TURN,
    PASSWORD,
    SOME_TEXT,
    A,
    B,
    new_turn_id,
    wait_for_row,
)

pytestmark = pytest.mark.django_db(transaction=True)

# About 8 s of answer (400 one-word chunks, 20 ms apart): time enough to act in the middle.
LONG = "tell me everything #chunks=400 #delay=20"
SHORT = "a short answer #chunks=30 #delay=20"


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


@pytest.fixture(autouse=True)
def _no_outage_remembered(monkeypatch):
    """Each test starts with a database this process never failed to reach."""
    monkeypatch.setattr(store, "_database_trouble_at", None, raising=False)


class Outage:
    """While ``down``, every statement this process sends fails as if the server were gone."""

    def __init__(self) -> None:
        self.down = False
        self.refused = 0

    @contextlib.contextmanager
    def installed(self):
        original = CursorWrapper._execute
        outage = self

        def execute(cursor, sql, params, *rest):
            if outage.down:
                outage.refused += 1
                with cursor.db.wrap_database_errors:
                    raise cursor.db.Database.OperationalError(
                        "connection to server failed: Connection refused"
                    )
            return original(cursor, sql, params, *rest)

        CursorWrapper._execute = execute
        try:
            yield self
        finally:
            CursorWrapper._execute = original


@pytest.fixture
def database_down():
    outage = Outage()
    with outage.installed():
        yield outage


async def streaming(turn_id: int, words: int = 5) -> TurnRunner:
    """The turn's runner, once some of the answer has been generated."""
    runner = registry._running[turn_id]
    for _ in range(400):
        if len(runner.state.text) > words:
            return runner
        await asyncio.sleep(0.02)
    raise AssertionError("the answer never started")


async def finished(runner: TurnRunner, within: float) -> None:
    await asyncio.wait_for(asyncio.shield(runner.task), within)


def as_if_on_another_worker(runner: TurnRunner) -> None:
    """Only its channel and its heartbeat speak for it now (this worker's registry does not)."""
    registry._running.pop(runner.turn_id, None)


def records() -> list[UsageRecord]:
    return list(UsageRecord.objects.order_by("pk"))


# -- 12: a chat deleted while its answer streams ------------------------------------------------


async def test_deleting_a_chat_stops_its_answer_on_another_worker_and_keeps_its_usage(
    user, thread, client
):
    turn = await launch.start_turn(user, thread.pk, LONG)
    runner = await streaming(turn.pk)
    as_if_on_another_worker(runner)
    await sync_to_async(client.force_login)(user)
    response = await sync_to_async(client.post)(reverse("chat:delete", args=[thread.pk]))
    assert response.status_code == 302
    await finished(runner, 5)  # stopped, not left to generate 8 s of answer nobody will see

    assert runner.state.status == Turn.Status.CANCELLED
    assert not await Thread.objects.filter(pk=thread.pk).aexists()
    [record] = await sync_to_async(records)()
    # The record outlives the chat: linked to neither, but with who, what model and how much.
    assert (record.thread_id, record.turn_id) == (None, None)
    assert (record.user_id, record.provider_name, record.model) == (user.pk, "Demo", "demo-chat")
    assert record.status == "cancelled" and record.estimated
    assert record.output_tokens == math.ceil(len("".join(runner.state.text)) / 4) > 0
    spent = await sync_to_async(quotas.spent)(user)
    assert spent.tokens_today == record.total_tokens > 0  # it counts against the quota


async def test_a_runner_that_missed_the_stop_ends_at_its_next_checkpoint_once_its_chat_is_gone(
    user, thread, settings, monkeypatch
):
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    monkeypatch.setattr(registry, "_send_stop", lambda channels: None, raising=False)  # lost
    turn = await launch.start_turn(user, thread.pk, LONG)
    runner = await streaming(turn.pk)
    await sync_to_async(Thread.objects.filter(pk=thread.pk).delete)()
    await finished(runner, 5)
    assert runner.state.status == Turn.Status.CANCELLED
    [record] = await sync_to_async(records)()
    assert record.user_id == user.pk and record.turn_id is None and record.output_tokens > 0


def test_a_deleted_tool_loop_counts_only_what_its_earlier_runners_had_not(user, thread):
    turn = Turn.objects.create(
        thread=thread,
        author=user,
        user_text="what is 2+2?",
        provider=thread.provider,
        model="demo-chat",
        tool_calls=[{"step": 1, "call_id": "c1", "name": "calculator", "status": "done"}],
        input_tokens=100,
        output_tokens=20,
        total_tokens=120,
        status=Turn.Status.AWAITING_TOOL,
    )
    usage.record_turn(turn)  # paused for the user: step 1 counted
    thread.delete()  # unlinks that record
    turn.input_tokens, turn.output_tokens, turn.total_tokens = 250, 50, 300
    turn.status = Turn.Status.CANCELLED
    earlier = {"input_tokens": 100, "output_tokens": 20, "cached_tokens": 0, "reasoning_tokens": 0}
    last = usage.record_turn(turn, deleted=True, recorded=earlier)
    assert (last.input_tokens, last.output_tokens, last.turn_id) == (150, 30, None)
    assert sum(record.total_tokens for record in records()) == 300


# -- 17: the database unreachable when an answer ends ---------------------------------------------


async def test_the_end_of_an_answer_waits_for_the_database_and_is_stored_once(
    user, thread, settings, monkeypatch
):
    """The first attempts fail before writing, the next ones after the turn's UPDATE (the
    connection drops inside the transaction): nothing half-written, nothing counted twice, and
    a stop pressed meanwhile does not abandon the write."""
    settings.TURN_FINISH_RETRY_SECONDS = 30
    attempts: list[float] = []
    trying = asyncio.Event()
    loop = asyncio.get_running_loop()
    store_end, record_turn = TurnRunner._store_end, usage.record_turn

    def flaky_store_end(runner, fields):
        attempts.append(time.monotonic())
        loop.call_soon_threadsafe(trying.set)
        if len(attempts) <= 2:
            raise InterfaceError("connection already closed")
        return store_end(runner, fields)

    def flaky_record_turn(turn, **options):
        if len(attempts) <= 4:
            raise OperationalError("server closed the connection unexpectedly")
        return record_turn(turn, **options)

    monkeypatch.setattr(TurnRunner, "_store_end", flaky_store_end)
    monkeypatch.setattr(usage, "record_turn", flaky_record_turn)
    turn = await launch.start_turn(user, thread.pk, SHORT)
    runner = registry._running[turn.pk]
    await asyncio.wait_for(trying.wait(), 10)
    assert await registry.stop_turn(turn.pk)  # the answer is complete: nothing to stop
    await finished(runner, 15)

    stored = await Turn.objects.aget(pk=turn.pk)
    assert len(attempts) == 5
    assert stored.status == Turn.Status.COMPLETED and stored.error == ""
    assert stored.output_text == "".join(runner.state.text) and stored.output_tokens > 0
    [record] = await sync_to_async(records)()
    assert record.output_tokens == stored.output_tokens and not record.estimated


async def test_an_outage_covering_the_end_of_an_answer_loses_nothing(
    user, thread, settings, monkeypatch, database_down
):
    """The runner is on another worker (only its heartbeat speaks for it); the outage outlasts
    TURN_STALE_SECONDS, so its heartbeat is stale when the database comes back. The reaper
    (running here every 0.1 s) must not take it for dead: its final write lands instead."""
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    settings.TURN_REAPER_SECONDS = 0.1
    settings.TURN_STALE_SECONDS = 1.0
    settings.TURN_FINISH_RETRY_SECONDS = 30
    monkeypatch.setattr(store, "FINISH_RETRY_MAX_DELAY", 0.2, raising=False)  # faster time
    turn = await launch.start_turn(user, thread.pk, SHORT)
    runner = await streaming(turn.pk)
    as_if_on_another_worker(runner)
    database_down.down = True
    await asyncio.sleep(1.8)  # the answer ends in the meantime
    assert runner.task.done() is False and runner.state.status == Turn.Status.COMPLETED
    database_down.down = False
    await finished(runner, 10)
    await asyncio.sleep(1.5)  # the reaper has had time to (wrongly) close it

    stored = await database_sync_to_async(Turn.objects.get)(pk=turn.pk)
    assert database_down.refused > 3  # the runner's and the reaper's queries failed
    assert stored.status == Turn.Status.COMPLETED and stored.error == ""
    assert stored.output_text == "".join(runner.state.text)
    [record] = await database_sync_to_async(records)()
    assert record.status == "completed" and record.output_tokens == stored.output_tokens > 0


async def test_an_outage_longer_than_the_retries_closes_the_turn_from_its_checkpoint(
    user, thread, settings, database_down
):
    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    settings.TURN_REAPER_SECONDS = 0.1
    settings.TURN_STALE_SECONDS = 0.5
    settings.TURN_FINISH_RETRY_SECONDS = 0.5
    turn = await launch.start_turn(user, thread.pk, SHORT)
    runner = await streaming(turn.pk)
    database_down.down = True
    await finished(runner, 5)  # it gave up: the turn is still "in progress" in the database
    database_down.down = False
    back = time.monotonic()
    while True:
        stored = await database_sync_to_async(Turn.objects.get)(pk=turn.pk)
        if stored.status != Turn.Status.IN_PROGRESS or time.monotonic() - back > 10:
            break
        await asyncio.sleep(0.1)
    # Not before the database had been back for TURN_STALE_SECONDS.
    assert time.monotonic() - back >= 0.5
    assert stored.status == Turn.Status.INTERRUPTED
    assert stored.output_text and "".join(runner.state.text).startswith(stored.output_text)
    assert "database" in stored.error  # not only "the server stopped"
    [record] = await database_sync_to_async(records)()
    assert record.status == "interrupted" and record.estimated
    assert record.output_tokens == math.ceil(len(stored.output_text) / 4)


def test_the_reaper_waits_until_the_database_has_been_back_for_the_stale_time(
    thread, user, settings, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    settings.TURN_STALE_SECONDS = 20
    dead = Turn.objects.create(
        thread=thread,
        author=user,
        user_text="q",
        output_text="half an answer",
        heartbeat_at=timezone.now() - timedelta(seconds=30),
    )
    store.note_database_trouble()  # e.g. the reaper's last look failed
    assert registry.mark_interrupted_turns() == []
    dead.refresh_from_db()
    assert dead.status == Turn.Status.IN_PROGRESS
    monkeypatch.setattr(store, "_database_trouble_at", time.monotonic() - 21)
    assert registry.mark_interrupted_turns() == [(dead.pk, thread.pk)]


@pytest.fixture
def _reconnect_afterwards():
    """The outage cut this process's sessions: the next tests start with fresh ones."""
    yield
    connections.close_all()


@pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="stops a PostgreSQL database (make test-scaleout)",
)
async def test_a_real_postgresql_outage_at_the_end_of_an_answer_loses_nothing(
    user, thread, settings, monkeypatch, _reconnect_afterwards
):
    """The test database refuses connections and its sessions are cut for 2.5 s, longer than
    TURN_STALE_SECONDS, while the answer ends."""
    import psycopg

    settings.STREAM_CHECKPOINT_SECONDS = 0.1
    settings.TURN_REAPER_SECONDS = 0.1
    settings.TURN_STALE_SECONDS = 1.5
    settings.TURN_FINISH_RETRY_SECONDS = 30
    monkeypatch.setattr(store, "FINISH_RETRY_MAX_DELAY", 0.2, raising=False)  # faster time
    database = connections["default"].settings_dict["NAME"]
    admin_settings = connections["default"].get_connection_params() | {"dbname": "postgres"}

    def set_reachable(reachable: bool) -> None:
        with psycopg.connect(**admin_settings, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(reachable).lower()}')
            if not reachable:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )

    turn = await launch.start_turn(user, thread.pk, SHORT)
    runner = await streaming(turn.pk)
    as_if_on_another_worker(runner)
    try:
        await asyncio.to_thread(set_reachable, False)
        await asyncio.sleep(2.5)
        assert not runner.task.done()  # still trying to store the end
    finally:
        await asyncio.to_thread(set_reachable, True)
    await finished(runner, 10)
    await asyncio.sleep(2)  # the reaper's chance to (wrongly) close it

    stored = await database_sync_to_async(Turn.objects.get)(pk=turn.pk)
    found = await database_sync_to_async(records)()
    await database_sync_to_async(connections.close_all)()  # this thread's cut sessions too
    assert stored.status == Turn.Status.COMPLETED and stored.error == ""
    assert stored.output_text == "".join(runner.state.text)
    [record] = found
    assert record.status == "completed" and record.output_tokens == stored.output_tokens > 0


# -- 20: interrupted turns record their usage -----------------------------------------------------


def _stale_turn(thread, user, **fields) -> Turn:
    from datetime import timedelta

    from django.utils import timezone

    return Turn.objects.create(
        thread=thread,
        author=user,
        user_text="tell me a long story",
        provider=thread.provider,
        model="demo-chat",
        heartbeat_at=timezone.now() - timedelta(seconds=60),
        **fields,
    )


def test_a_dead_workers_turn_records_an_estimate_once_whoever_closes_it(user, thread, settings):
    settings.TURN_STALE_SECONDS = 20
    dead = _stale_turn(thread, user, output_text="x" * 403, reasoning_text="")
    assert registry.mark_interrupted_turns() == [(dead.pk, thread.pk)]
    assert registry.mark_interrupted_turns() == []  # a second worker looking: nothing again
    [record] = records()
    assert (record.turn_id, record.user_id, record.status) == (dead.pk, user.pk, "interrupted")
    assert record.estimated and record.output_tokens == 101
    assert record.input_tokens == math.ceil(len("tell me a long story") / 4)


def test_a_dead_workers_turn_records_the_usage_its_checkpoints_stored(user, thread, settings):
    settings.TURN_STALE_SECONDS = 20
    dead = _stale_turn(
        thread, user, output_text="step two", input_tokens=300, output_tokens=40, total_tokens=340
    )
    registry.mark_interrupted_turns()
    [record] = records()
    assert not record.estimated
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (300, 40, 340)
    assert record.turn_id == dead.pk


async def test_checkpoints_store_the_usage_reported_so_far(user, thread, settings):
    settings.STREAM_CHECKPOINT_SECONDS = 0.05
    turn = await launch.start_turn(user, thread.pk, LONG)
    runner = await streaming(turn.pk)
    runner.state.add_usage(Usage(120, 30, 150))  # a finished tool step's report
    await asyncio.sleep(0.3)
    saved = await Turn.objects.aget(pk=turn.pk)
    await registry.stop_turn(turn.pk)
    await registry.wait_for(turn.pk)
    assert (saved.input_tokens, saved.output_tokens, saved.total_tokens) == (120, 30, 150)


async def test_a_runner_back_after_being_taken_for_dead_stores_its_answer_without_double_count(
    user, thread, settings
):
    """A worker closed the turn from its last checkpoint (and recorded an estimate); the runner
    then stores the whole answer, adding only the usage not yet recorded."""
    settings.STREAM_CHECKPOINT_SECONDS = 0.05
    turn = await launch.start_turn(user, thread.pk, SHORT)
    runner = await streaming(turn.pk)
    as_if_on_another_worker(runner)
    await asyncio.sleep(0.1)  # a checkpoint with some text
    closed = await database_sync_to_async(registry.mark_interrupted_turns)(older_than=-60)
    assert closed == [(turn.pk, thread.pk)]
    reaped = await Turn.objects.aget(pk=turn.pk)
    await finished(runner, 10)

    stored = await Turn.objects.aget(pk=turn.pk)
    assert stored.status == Turn.Status.COMPLETED and stored.error == ""
    assert stored.output_text == "".join(runner.state.text) != reaped.output_text
    estimate, rest = await sync_to_async(records)()
    assert estimate.estimated and estimate.status == "interrupted"
    assert estimate.output_tokens == math.ceil(len(reaped.output_text) / 4)
    assert estimate.output_tokens + rest.output_tokens == max(
        stored.output_tokens, estimate.output_tokens
    )
    assert estimate.input_tokens + rest.input_tokens == max(
        stored.input_tokens, estimate.input_tokens
    )


# -- the same across workers (PostgreSQL + Redis, two Daphne processes; make test-scaleout) -----


def _delete_over_http(cluster, worker_index: int, thread_id: int, cookie: str) -> int:
    """The owner deletes the chat from a page served by this worker; the response's status."""
    import re

    import httpx

    url = cluster.workers[worker_index].url
    with httpx.Client(base_url=url, cookies={"sessionid": cookie}, timeout=10) as browser:
        page = browser.get(f"/t/{thread_id}/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, f"no CSRF token on the chat page ({page.status_code})"
        response = browser.post(
            f"/t/{thread_id}/delete/",
            data={"csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{url}/t/{thread_id}/"},
        )
    return response.status_code


@pytest.fixture
def chat(worker_cluster) -> tuple:
    """alice, her chat on the cluster, and her session (as in tests/test_multiprocess.py)."""
    worker_cluster.create_user("alice", PASSWORD)
    thread_id = worker_cluster.create_thread("alice", "Across workers")
    return worker_cluster, thread_id, worker_cluster.session_cookie(A, "alice", PASSWORD)


async def _usage_rows(cluster, within: float) -> list[dict]:
    deadline = time.monotonic() + within
    while True:
        rows = cluster.sql("SELECT * FROM chat_usagerecord ORDER BY id")
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


@pytest.mark.multiprocess
async def test_deleting_a_chat_on_one_worker_stops_its_answer_on_the_other_and_keeps_the_usage(
    chat,
):
    cluster, thread_id, cookie = chat
    async with cluster.socket(A, thread_id, cookie) as sender:
        await sender.send({"action": "send", "message": LONG})
        await sender.receive_until(NEW_TURN, 15)
        await sender.receive_until(SOME_TEXT, 15)  # streaming on A
        status = await asyncio.to_thread(_delete_over_http, cluster, B, thread_id, cookie)
        assert status == 302
        deleted_at = time.monotonic()
        rows = await _usage_rows(cluster, 6)  # the answer alone would take 8 s more

    assert rows, "no usage recorded for the deleted chat's answer"
    assert time.monotonic() - deleted_at < 6
    [record] = rows
    assert record["thread_id"] is None and record["turn_id"] is None
    assert record["status"] == "cancelled" and record["estimated"]
    assert record["model"] == "demo-chat" and record["user_id"] is not None
    assert 0 < record["output_tokens"] < LONG_WORDS * 2
    assert not cluster.sql("SELECT id FROM chat_turn WHERE thread_id = %s", (thread_id,))


@pytest.mark.multiprocess
async def test_a_killed_workers_answer_records_its_usage_once(chat):
    cluster, thread_id, cookie = chat
    async with cluster.socket(B, thread_id, cookie) as viewer:
        async with cluster.socket(A, thread_id, cookie) as sender:
            await sender.send({"action": "send", "message": LONG})
            turn_id = new_turn_id(await viewer.receive_until(NEW_TURN, 15))
            await wait_for_row(cluster, turn_id, lambda row: row["output_text"], 10)
            cluster.workers[A].kill()
        row = await wait_for_row(cluster, turn_id, lambda row: row["status"] != "in_progress", 12)
        await asyncio.sleep(2)  # B's reaper looks every second: it must not count it again

    assert row["status"] == "interrupted"
    [record] = cluster.sql("SELECT * FROM chat_usagerecord")
    assert record["turn_id"] == turn_id and record["status"] == "interrupted"
    assert record["estimated"] and record["output_tokens"] == math.ceil(len(row["output_text"]) / 4)

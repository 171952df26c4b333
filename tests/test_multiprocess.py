"""Several workers: two Daphne processes over one PostgreSQL database and one Redis.

Everything is observed the way a browser observes it, over the websocket protocol: HTML
fragments for a new turn, its deltas and its finished article; and in the stored turn. Worker
0 ("A") runs the answer; worker 1 ("B") serves other sockets. Run by ``make test-scaleout``.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from chat.markdown import render_markdown
from tests.support.htmx import AnswerView, element
from tests.workers import WorkerCluster

pytestmark = pytest.mark.multiprocess

PASSWORD = "correct horse 42"
A, B = 0, 1
# 400 one-word chunks 20 ms apart: about 8 s of answer, time enough to act in the middle.
LONG = "tell me everything #chunks=400 #delay=20"
LONG_WORDS = 400
NEW_TURN = r'id="turns" hx-swap-oob="beforeend"'
SOME_TEXT = r'-tail" hx-swap-oob="innerHTML"><'


def finished(turn_id: int, status: str = "completed") -> str:
    return rf'id="turn-{turn_id}" class="turn" data-status="{status}"'


def new_turn_id(messages: list[str]) -> int:
    for message in messages:
        if NEW_TURN in message:
            found = re.search(r'<article id="turn-(\d+)" class="turn"', message)
            if found:
                return int(found.group(1))
    raise AssertionError("no new turn among the messages")


@pytest.fixture
def chat(worker_cluster: WorkerCluster) -> tuple[WorkerCluster, int, str]:
    """alice, her chat, and her session (logged in on A; sessions live in the shared DB)."""
    worker_cluster.create_user("alice", PASSWORD)
    thread_id = worker_cluster.create_thread("alice", "Across workers")
    return worker_cluster, thread_id, worker_cluster.session_cookie(A, "alice", PASSWORD)


async def wait_for_row(cluster: WorkerCluster, turn_id: int, check, within: float) -> dict:
    """The turn's row once ``check(row)`` holds; fails with the last row seen after that."""
    deadline = time.monotonic() + within
    while True:
        row = cluster.turn(turn_id)
        if check(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"turn {turn_id} never got there within {within:g} s: {row}")
        await asyncio.sleep(0.1)


async def test_a_viewer_on_another_worker_sees_the_answer_stream_in(chat):
    cluster, thread_id, cookie = chat
    async with (
        cluster.socket(A, thread_id, cookie) as sender,
        cluster.socket(B, thread_id, cookie) as viewer,
    ):
        await sender.send({"action": "send", "message": "across #chunks=150 #delay=10"})
        created = await viewer.receive_until(NEW_TURN, 15)
        turn_id = new_turn_id(created)
        view = AnswerView(turn_id)
        messages = created + await viewer.receive_until(finished(turn_id), 30)
        for message in messages[:-1]:
            view.apply(message)
        streamed = view.blocks
        view.apply(messages[-1])

    row = cluster.turn(turn_id)
    assert row["status"] == "completed"
    whole = render_markdown(row["output_text"])
    assert view.deltas >= 3, "the answer did not arrive in pieces on the other worker"
    # Streamed blocks arrived once each and in order: a prefix of the stored answer...
    assert whole.startswith(streamed) and len(streamed) > len(whole) // 2
    # ...and what the viewer ends up with is exactly the stored answer.
    assert view.status == "completed" and view.blocks == whole


async def test_viewers_on_the_runners_worker_and_on_another_all_get_every_delta_in_order(chat):
    """Two tabs on the runner's worker get the deltas straight from the runner; two on the
    other worker through that worker's one membership of the thread (``chat.live_local``):
    each tab sees the new turn first, then every block once and in order."""
    cluster, thread_id, cookie = chat
    async with (
        cluster.socket(A, thread_id, cookie) as sender,
        cluster.socket(A, thread_id, cookie) as local_tab,
        cluster.socket(B, thread_id, cookie) as remote_tab,
        cluster.socket(B, thread_id, cookie) as second_remote_tab,
    ):
        tabs = (sender, local_tab, remote_tab, second_remote_tab)
        await sender.send({"action": "send", "message": "to all #chunks=120 #delay=10"})
        seen = [await tab.receive_until(NEW_TURN, 15) for tab in tabs]
        turn_id = new_turn_id(seen[0])
        for tab, messages in zip(tabs, seen, strict=True):
            messages += await tab.receive_until(finished(turn_id), 30)
    whole = render_markdown(cluster.turn(turn_id)["output_text"])
    for messages in seen:
        first_turn = next(i for i, m in enumerate(messages) if NEW_TURN in m)
        assert not any(f"turn-{turn_id}-tail" in m for m in messages[:first_turn])
        view = AnswerView(turn_id)
        for message in messages[:-1]:
            view.apply(message)
        assert view.deltas >= 3
        assert whole.startswith(view.blocks) and len(view.blocks) > len(whole) // 2


async def test_stop_on_one_worker_stops_the_answer_running_on_another(chat):
    cluster, thread_id, cookie = chat
    async with (
        cluster.socket(A, thread_id, cookie) as sender,
        cluster.socket(B, thread_id, cookie) as viewer,
    ):
        await sender.send({"action": "send", "message": LONG})
        turn_id = new_turn_id(await viewer.receive_until(NEW_TURN, 15))
        await viewer.receive_until(SOME_TEXT, 15)  # the answer is streaming
        await viewer.send({"action": "stop"})
        stopped = await viewer.receive_until(finished(turn_id, "cancelled"), 5)
        assert "Stopped." in stopped[-1]

    row = cluster.turn(turn_id)
    assert row["status"] == "cancelled"
    words = len(row["output_text"].split())
    assert 0 < words < LONG_WORDS, f"kept {words} words of {LONG_WORDS}"


async def test_a_killed_workers_answer_is_marked_interrupted_with_its_text(chat):
    cluster, thread_id, cookie = chat
    async with cluster.socket(B, thread_id, cookie) as viewer:
        async with cluster.socket(A, thread_id, cookie) as sender:
            await sender.send({"action": "send", "message": LONG})
            turn_id = new_turn_id(await viewer.receive_until(NEW_TURN, 15))
            await viewer.receive_until(SOME_TEXT, 15)
            # A checkpoint has stored some of the answer (every 0.5 s here).
            await wait_for_row(cluster, turn_id, lambda row: row["output_text"], 5)
            killed_at = time.monotonic()
            cluster.workers[A].kill()
            with pytest.raises(Exception):  # noqa: B017 (any way the dead socket ends is fine)
                await sender.receive_until("never", 5)

        row = await wait_for_row(cluster, turn_id, lambda row: row["status"] != "in_progress", 12)
        assert row["status"] == "interrupted", row
        assert time.monotonic() - killed_at < 12
        words = len(row["output_text"].split())
        assert 0 < words < LONG_WORDS
        shown = (await viewer.receive_until(finished(turn_id, "interrupted"), 5))[-1]

    assert 'class="retry"' in shown and "Retry" in shown
    answer = element(shown, f"turn-{turn_id}-answer")
    assert answer is not None and answer[1] == render_markdown(row["output_text"])


async def test_a_socket_reconnecting_to_another_worker_gets_the_text_so_far_then_the_rest(chat):
    cluster, thread_id, cookie = chat
    async with cluster.socket(A, thread_id, cookie) as first:
        await first.send({"action": "send", "message": LONG})
        created = await first.receive_until(NEW_TURN, 15)
        turn_id = new_turn_id(created)
        held = AnswerView(turn_id)
        for message in created:
            held.apply(message)
        while held.blocks.count("</p>") < 3:  # a few finished paragraphs on screen
            held.apply(await first.receive(10))
    # The tab is gone; the answer goes on on A. The page comes back, served by B.
    await asyncio.sleep(0.3)
    async with cluster.socket(B, thread_id, cookie) as second:
        view = AnswerView(turn_id)
        view.apply((await second.receive_until(rf'id="turn-{turn_id}"', 5))[-1])
        assert view.status == "in_progress"
        so_far = view.blocks
        assert so_far.startswith(held.blocks), "the snapshot has less than the tab had shown"
        messages = await second.receive_until(finished(turn_id), 20)
        for message in messages[:-1]:
            view.apply(message)
        streamed = view.blocks

    row = cluster.turn(turn_id)
    assert row["status"] == "completed"
    whole = render_markdown(row["output_text"])
    assert len(streamed) > len(so_far), "nothing arrived after the snapshot"
    # No gap and nothing twice: the snapshot plus the deltas is a prefix of the whole answer.
    assert whole.startswith(streamed), "the answer on screen differs from the stored one"
    assert len(streamed) > len(whole) // 2


# -- Redis restarting mid-stream (the test's own redis-server) ----------------------------------


@pytest.fixture
def chat_on_own_redis(redis_server, chat):
    """``chat``, with both workers on a Redis of this test's own, which it restarts."""
    return (*chat, redis_server)


async def _healthy(cluster: WorkerCluster, within: float) -> None:
    import httpx

    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=3) as client:
        for worker in cluster.workers:
            while (await client.get(f"{worker.url}/healthz")).status_code != 200:
                assert time.monotonic() < deadline, f"worker {worker.index} never healthy again"
                await asyncio.sleep(0.2)


def _resumed(arrivals: list[float], back_at: float) -> float:
    """When messages flowed again after Redis came back, in seconds: the first arrival after
    the pause (what was read at once had been buffered by the client before the outage)."""
    previous = back_at
    for arrival in arrivals:
        if arrival - previous > 0.1:
            return arrival - back_at
        previous = arrival
    return arrivals[0] - back_at


async def test_a_redis_restart_mid_stream_loses_nothing_for_viewers_on_either_worker(
    chat_on_own_redis,
):
    cluster, thread_id, cookie, redis_server = chat_on_own_redis
    async with (
        cluster.socket(A, thread_id, cookie) as sender,
        cluster.socket(B, thread_id, cookie) as viewer,
    ):
        await sender.send({"action": "send", "message": LONG})
        created = await viewer.receive_until(NEW_TURN, 15)
        turn_id = new_turn_id(created)
        view, held = AnswerView(turn_id), AnswerView(turn_id)
        for message in created + await viewer.receive_until(SOME_TEXT, 15):
            view.apply(message)
        for message in await sender.receive_until(SOME_TEXT, 15):
            held.apply(message)
        before = len(view.blocks)

        await asyncio.to_thread(redis_server.restart, 1.0)
        back_at = time.monotonic()
        # Both sockets stay open and the answer keeps arriving on the other worker.
        messages, arrivals = [], []
        while not messages or not re.search(finished(turn_id), messages[-1]):
            messages.append(await viewer.receive(30))
            arrivals.append(time.monotonic())
        for message in messages[:-1]:
            view.apply(message)
        streamed = view.blocks
        view.apply(messages[-1])
        for message in await sender.receive_until(finished(turn_id), 10):
            held.apply(message)
        await _healthy(cluster, 10)
        print(f"Redis back → deltas again after {_resumed(arrivals, back_at):.2f} s")

    row = cluster.turn(turn_id)
    assert row["status"] == "completed", row
    assert len(row["output_text"].split()) == LONG_WORDS, "the stored answer is not whole"
    whole = render_markdown(row["output_text"])
    assert len(streamed) > before, "no delta reached the viewer after the restart"
    assert whole.startswith(streamed), "the streamed answer has a gap or a repeat"
    assert view.blocks == whole and held.blocks == whole


async def test_after_a_redis_restart_stop_works_and_new_sockets_connect(chat_on_own_redis):
    cluster, thread_id, cookie, redis_server = chat_on_own_redis
    async with cluster.socket(A, thread_id, cookie) as sender:
        await sender.send({"action": "send", "message": LONG})
        turn_id = new_turn_id(await sender.receive_until(NEW_TURN, 15))
        await sender.receive_until(SOME_TEXT, 15)
        await asyncio.to_thread(redis_server.restart, 1.0)
        await sender.receive_until(SOME_TEXT, 10)  # deltas flow again
        # A new socket on each worker connects and shows the running answer.
        async with (
            cluster.socket(A, thread_id, cookie) as again,
            cluster.socket(B, thread_id, cookie) as other,
        ):
            for socket in (again, other):
                shown = (await socket.receive_until(rf'id="turn-{turn_id}"', 10))[-1]
                assert 'data-status="in_progress"' in shown
            await other.send({"action": "stop"})  # from B, to the runner on A
            for socket in (other, again, sender):
                await socket.receive_until(finished(turn_id, "cancelled"), 10)
    row = cluster.turn(turn_id)
    assert row["status"] == "cancelled", row
    assert 0 < len(row["output_text"].split()) < LONG_WORDS


def _words(html: str) -> list[str]:
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", " ", html)).split()


async def test_a_killed_workers_answer_is_stored_as_far_as_its_viewers_saw_it(chat):
    cluster, thread_id, cookie = chat
    async with cluster.socket(B, thread_id, cookie) as viewer:
        async with cluster.socket(A, thread_id, cookie) as sender:
            await sender.send({"action": "send", "message": LONG})
            created = await viewer.receive_until(NEW_TURN, 15)
            turn_id = new_turn_id(created)
            view = AnswerView(turn_id)
            for message in created + await viewer.receive_until("Filler paragraph 2", 15):
                view.apply(message)
            # Die well after a checkpoint (every 0.5 s here): what a checkpoint alone keeps
            # is then about 0.35 s (~17 words) behind what the viewers saw.
            checkpoint = cluster.turn(turn_id)["output_text"]
            await wait_for_row(cluster, turn_id, lambda row: row["output_text"] != checkpoint, 5)
            await asyncio.sleep(0.35)
            cluster.workers[A].kill()
        messages = await viewer.receive_until(finished(turn_id, "interrupted"), 15)
        for message in messages[:-1]:
            view.apply(message)

    row = cluster.turn(turn_id)
    assert row["status"] == "interrupted", row
    seen = _words(view.blocks + view.tail)
    stored = _words(render_markdown(row["output_text"]))
    print(f"kill -9: the viewer saw {len(seen)} words, {len(stored)} were stored")
    # Within one coalescing window (40 ms, 2 words at 20 ms a word) of what was seen.
    assert abs(len(stored) - len(seen)) <= 3, (len(seen), len(stored))
    assert stored[: len(seen) - 3] == seen[: len(seen) - 3]


# -- SIGTERM: a worker stopped for a deploy ---------------------------------------------------

GRACE = 3.0  # SHUTDOWN_GRACE_SECONDS of the test workers (tests/workers.py)


async def _close_code(socket, within: float = 5) -> int | None:
    """The code the server closed the socket with (messages before it are skipped)."""
    from websockets.exceptions import ConnectionClosed

    try:
        async with asyncio.timeout(within):
            while True:
                await socket.connection.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_sigterm_finishes_or_stores_running_answers_and_sends_viewers_elsewhere(chat):
    cluster, long_thread, cookie = chat
    short_thread = cluster.create_thread("alice", "Short one")
    short = "brief #chunks=60 #delay=20"  # about 1.2 s: finishes within the grace period
    async with (
        cluster.socket(A, long_thread, cookie) as on_a,
        cluster.socket(A, short_thread, cookie) as short_on_a,
        cluster.socket(B, long_thread, cookie) as viewer,
        cluster.socket(B, short_thread, cookie) as short_viewer,
    ):
        await on_a.send({"action": "send", "message": LONG})
        created = await viewer.receive_until(NEW_TURN, 15)
        long_id = new_turn_id(created)
        view = AnswerView(long_id)
        for message in created + await viewer.receive_until(SOME_TEXT, 15):
            view.apply(message)
        await short_on_a.send({"action": "send", "message": short})
        short_id = new_turn_id(await short_viewer.receive_until(NEW_TURN, 15))

        cluster.workers[A].terminate()
        stopped_at = time.monotonic()
        # Its sockets are closed with "service restart" (the page reconnects elsewhere)...
        assert [await _close_code(s) for s in (on_a, short_on_a)] == [1012, 1012]
        # ...and it takes no new connection meanwhile.
        with pytest.raises(OSError):
            async with cluster.socket(A, long_thread, cookie):
                pass
        messages = await viewer.receive_until(finished(long_id, "interrupted"), GRACE + 10)
        for message in messages[:-1]:
            view.apply(message)
        interrupted_after = time.monotonic() - stopped_at
        await short_viewer.receive_until(finished(short_id), 5)

    cluster.workers[A].process.wait(timeout=15)
    exited_after = time.monotonic() - stopped_at
    print(f"SIGTERM: stored after {interrupted_after:.1f} s, exited after {exited_after:.1f} s")
    assert cluster.workers[A].process.returncode == 0
    assert GRACE - 0.5 < interrupted_after < GRACE + 5
    long_row, short_row = cluster.turn(long_id), cluster.turn(short_id)
    assert short_row["status"] == "completed" and len(short_row["output_text"].split()) == 60
    assert long_row["status"] == "interrupted" and "restarted" in long_row["error"]
    # Stored with everything written, at least all the viewer on the other worker saw.
    stored = render_markdown(long_row["output_text"])
    assert stored.startswith(view.blocks) and len(view.blocks) > 0
    assert 0 < len(long_row["output_text"].split()) < LONG_WORDS
    assert 'class="retry"' in messages[-1] and "restarted" in messages[-1]

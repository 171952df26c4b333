"""Pytest plugin: several Switchboard workers (Daphne processes) sharing PostgreSQL and Redis.

``worker_cluster`` needs ``DATABASE_URL`` and ``REDIS_URL`` (``make test-scaleout`` starts both
with ``.ci/services.sh``). Each cluster gets its own database (a copy of a template migrated
once per test session), its own channel-layer/cache prefix in Redis, and two Daphne workers on
free ports that use the session's demo gateway as their default provider. Everything is torn
down at the end of the test; a failing test's report carries the tail of each worker's log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.gateway_fixtures import daphne_command, free_port

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
START_TIMEOUT = 30.0
LOG_TAIL = 4000

# The turn timings the multi-process tests rely on (the defaults are production-sized).
WORKER_SETTINGS = {
    "STREAM_CHECKPOINT_SECONDS": "0.5",
    "TURN_STALE_SECONDS": "3",
    "TURN_REAPER_SECONDS": "1",
    "SHUTDOWN_GRACE_SECONDS": "3",
    "RATE_LIMIT_PER_MINUTE": "0",
    "DJANGO_SECURE": "0",
    "DEMO_GATEWAY_ENABLED": "0",
    "DJANGO_DEBUG": "0",
    "PYTHONUNBUFFERED": "1",
}


def _services() -> tuple[str, str]:
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        pytest.fail(
            "the multi-process tests need PostgreSQL and Redis: run `make test-scaleout`, or set "
            'DATABASE_URL=postgres://… and REDIS_URL=redis://… (e.g. eval "$(bash '
            '.ci/services.sh)") before pytest',
            pytrace=False,
        )
    return database_url, redis_url


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connection(database_url: str):
    import psycopg

    return psycopg.connect(database_url, dbname="postgres", autocommit=True, connect_timeout=10)


def _drop_database(database_url: str, name: str) -> None:
    with _admin_connection(database_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        pytest.fail(
            f"manage.py {' '.join(args)[:200]} failed ({result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-LOG_TAIL:]}",
            pytrace=False,
        )
    return result.stdout


def _tail(path: Path, size: int = LOG_TAIL) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as exc:
        return f"(no log: {exc})"


@dataclass
class _Template:
    """A database migrated once per session, with the default provider; clusters copy it."""

    name: str
    secret_key: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def _cluster_template(demo_gateway_url, demo_api_key, tmp_path_factory) -> Iterator[_Template]:
    database_url, redis_url = _services()
    name = f"sb_tmpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    secret_key = secrets.token_urlsafe(50)
    data_dir = tmp_path_factory.mktemp("cluster-data")
    env = {
        **os.environ,
        **WORKER_SETTINGS,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": with_database(database_url, name),
        "REDIS_URL": redis_url,
        "DJANGO_SECRET_KEY": secret_key,
        "OPENAI_BASE_URL": demo_gateway_url,
        "OPENAI_API_KEY": demo_api_key,
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "STATIC_ROOT": str(data_dir / "static"),
    }
    with _admin_connection(database_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _manage(env, "migrate", "--noinput", "-v0")
        # The default provider (from OPENAI_BASE_URL/KEY) once, not raced by two workers.
        _manage(
            env,
            "shell",
            "-c",
            "from chat.services.providers import ensure_default_provider;"
            " ensure_default_provider()",
        )
        yield _Template(name=name, secret_key=secret_key, env=env)
    finally:
        _drop_database(database_url, name)


@dataclass
class Worker:
    index: int
    port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            daphne_command(self.port),
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(
            f"worker {self.index} did not become healthy on {self.url}"
            f" (exit code {self.process.poll()}):\n{self.log_tail()}",
            pytrace=False,
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the worker dies at once, mid-whatever, as in a crash or an OOM kill."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, as systemd sends on stop or deploy; returns at once (the worker drains)."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, size: int = LOG_TAIL) -> str:
        if self._log is not None:
            self._log.flush()
        return _tail(self.log_path, size)


class ClusterSocket:
    """A browser's websocket: send actions, read the HTML fragments the server pushes."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.received: list[str] = []

    async def send(self, data: dict) -> None:
        await self.connection.send(json.dumps(data))

    async def receive(self, timeout: float = 10) -> str:  # noqa: ASYNC109
        import asyncio

        message = await asyncio.wait_for(self.connection.recv(), timeout)
        text = message if isinstance(message, str) else message.decode()
        self.received.append(text)
        return text

    async def receive_until(self, pattern: str, timeout: float = 10) -> list[str]:  # noqa: ASYNC109
        """Messages received up to and including the first one matching ``pattern``
        (a regex); fails with what did arrive when none does within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        messages: list[str] = []
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                message = await self.receive(left)
            except (TimeoutError, OSError) as exc:
                seen = "\n---\n".join(m[:600] for m in messages[-5:]) or "(nothing)"
                pytest.fail(
                    f"no message matching {pattern!r} within {timeout:g} s"
                    f" ({type(exc).__name__}); the last ones:\n{seen}",
                    pytrace=False,
                )
            messages.append(message)
            if re.search(pattern, message):
                return messages


@dataclass
class WorkerCluster:
    database_url: str
    redis_url: str
    prefix: str
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    # -- data ------------------------------------------------------------------------------

    def django(self, code: str) -> str:
        """Run Python in ``manage.py shell`` against the cluster's database; its stdout."""
        return _manage(self.env, "shell", "-c", code)

    def create_user(self, username: str, password: str, *, staff: bool = False) -> int:
        out = self.django(
            "from django.contrib.auth import get_user_model\n"
            f"user = get_user_model().objects.create_user({username!r}, password={password!r},"
            f" is_staff={staff!r}, is_superuser={staff!r})\n"
            "print(user.pk)"
        )
        return int(out.strip().splitlines()[-1])

    def create_thread(self, owner_username: str, title: str = "A chat") -> int:
        out = self.django(
            "from django.contrib.auth import get_user_model\n"
            "from chat.models import Provider, Thread\n"
            f"owner = get_user_model().objects.get(username={owner_username!r})\n"
            "provider = Provider.objects.get(is_default=True)\n"
            "thread = Thread.objects.create(owner=owner, provider=provider, model='demo-chat',"
            f" title={title!r})\n"
            "print(thread.pk)"
        )
        return int(out.strip().splitlines()[-1])

    def sql(self, query: str, params: tuple | dict | None = None) -> list[dict]:
        """Rows of a query on the cluster's database, as dicts."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as db:
            return db.execute(query, params).fetchall()

    def turn(self, turn_id: int) -> dict:
        rows = self.sql(
            "SELECT id, thread_id, status, output_text, error, runner_channel, heartbeat_at"
            " FROM chat_turn WHERE id = %s",
            (turn_id,),
        )
        assert rows, f"no turn {turn_id}"
        return rows[0]

    def turns(self, thread_id: int) -> list[dict]:
        return self.sql(
            "SELECT id, status, output_text, error FROM chat_turn WHERE thread_id = %s ORDER BY id",
            (thread_id,),
        )

    # -- HTTP and websockets -----------------------------------------------------------------

    def session_cookie(self, worker_index: int, username: str, password: str) -> str:
        """Log in through the worker's login form; the ``sessionid`` cookie's value."""
        worker = self.workers[worker_index]
        with httpx.Client(base_url=worker.url, timeout=10) as client:
            page = client.get("/accounts/login/")
            page.raise_for_status()
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token, "no CSRF token on the login page"
            response = client.post(
                "/accounts/login/",
                data={
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": token.group(1),
                },
                headers={"Referer": f"{worker.url}/accounts/login/"},
            )
            assert response.status_code == 302, f"login failed ({response.status_code})"
            return client.cookies["sessionid"]

    @asynccontextmanager
    async def socket(
        self, worker_index: int, thread_id: int, cookie: str, query: str = ""
    ) -> AsyncIterator[ClusterSocket]:
        from websockets.asyncio.client import connect

        worker = self.workers[worker_index]
        url = f"ws://127.0.0.1:{worker.port}/ws/threads/{thread_id}/"
        if query:
            url += f"?{query}"
        async with connect(
            url,
            origin=f"http://127.0.0.1:{worker.port}",
            additional_headers={"Cookie": f"sessionid={cookie}"},
            open_timeout=10,
            close_timeout=2,
            max_size=None,
        ) as connection:
            yield ClusterSocket(connection)

    # -- lifecycle ---------------------------------------------------------------------------

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {w.index} ({w.url}, {'alive' if w.alive else 'gone'}) log tail ---\n"
            f"{w.log_tail()}"
            for w in self.workers
        )

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def worker_cluster(request, _cluster_template, tmp_path) -> Iterator[WorkerCluster]:
    """Two Daphne workers over one fresh PostgreSQL database and one Redis prefix (on the
    test's own Redis when it asks for ``redis_server``, e.g. to restart it)."""
    database_url, redis_url = _services()
    if "redis_server" in request.fixturenames:
        redis_url = request.getfixturevalue("redis_server").url
    name = f"sb_cluster_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    prefix = f"switchboard-cluster-{uuid.uuid4().hex[:12]}."
    with _admin_connection(database_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_cluster_template.name}"')
    cluster_url = with_database(database_url, name)
    env = _cluster_template.env | {
        "DATABASE_URL": cluster_url,
        "CHANNEL_LAYER_PREFIX": prefix,
        "REDIS_URL": redis_url,
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
    }
    cluster = WorkerCluster(database_url=cluster_url, redis_url=redis_url, prefix=prefix, env=env)
    try:
        for index in range(WORKERS):
            worker = Worker(
                index=index,
                port=free_port(),
                log_path=tmp_path / f"worker-{index}.log",
                env=env,
            )
            cluster.workers.append(worker)
            worker.start()
        deadline = time.monotonic() + START_TIMEOUT
        for worker in cluster.workers:
            worker.wait_ready(deadline)
        yield cluster
    finally:
        cluster.stop()
        with suppress(Exception):
            _drop_database(database_url, name)
        with suppress(Exception):
            _delete_prefix(redis_url, prefix)


def _delete_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    cluster = getattr(item, "funcargs", {}).get("worker_cluster")
    if report.failed and isinstance(cluster, WorkerCluster):
        report.sections.append(("worker logs", cluster.logs()))
    return report


# -- reading the HTML fragments -------------------------------------------------------------

_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip


class _ElementFinder(HTMLParser):
    def __init__(self, source: str, element_id: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.element_id = element_id
        self.line_starts = [0]
        for line in source.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.depth: int | None = None
        self.start: int | None = None
        self.end: int | None = None
        self.start_tag = ""

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.end is not None:
            return
        if self.depth is None:
            if dict(attrs).get("id") == self.element_id:
                self.start_tag = self.get_starttag_text() or ""
                self.start = self._offset() + len(self.start_tag)
                self.depth = 0 if tag not in _VOID else None
        elif tag not in _VOID:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth is None or self.end is not None or tag in _VOID:
            return
        if self.depth == 0:
            self.end = self._offset()
        else:
            self.depth -= 1


def element(html: str, element_id: str) -> tuple[str, str] | None:
    """(start tag, inner HTML) of the first element with this id in a fragment, or None."""
    finder = _ElementFinder(html, element_id)
    finder.feed(html)
    finder.close()
    if finder.start is None or finder.end is None:
        return None
    return finder.start_tag, html[finder.start : finder.end]


class AnswerView:
    """What a browser shows of one turn's answer, built from the fragments it receives the way
    htmx applies them: an article replaces the answer; a delta appends finished blocks to
    ``turn-N-answer`` and replaces ``turn-N-tail``."""

    def __init__(self, turn_id: int) -> None:
        self.turn_id = turn_id
        self.blocks = ""  # the finished blocks shown, in order
        self.tail = ""
        self.status = ""
        self.articles = 0
        self.deltas = 0

    def apply(self, message: str) -> None:
        article = element(message, f"turn-{self.turn_id}")
        if article is not None:
            self.articles += 1
            status = re.search(r'data-status="([^"]*)"', article[0])
            self.status = status.group(1) if status else ""
            answer = element(article[1], f"turn-{self.turn_id}-answer")
            tail = element(article[1], f"turn-{self.turn_id}-tail")
            self.blocks = answer[1] if answer else ""
            self.tail = tail[1] if tail else ""
            return
        appended = element(message, f"turn-{self.turn_id}-answer")
        tail = element(message, f"turn-{self.turn_id}-tail")
        if appended is not None and 'hx-swap-oob="beforeend"' in appended[0]:
            self.blocks += appended[1]
        if tail is not None and 'hx-swap-oob="innerHTML"' in tail[0]:
            self.tail = tail[1]
            self.deltas += 1

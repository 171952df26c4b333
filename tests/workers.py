"""Pytest plugin: several Switchboard workers (Daphne processes) sharing PostgreSQL and Redis.

``worker_cluster`` needs ``DATABASE_URL`` and ``REDIS_URL`` (``make test-scaleout`` starts both
with ``.ci/services.sh``). Each cluster gets its own database (a copy of a template migrated
once per test session), its own channel-layer/cache prefix in Redis, and two Daphne workers on
free ports that use the session's demo gateway as their default provider. Everything is torn
down at the end of the test; a failing test's report carries the tail of each worker's log.
The helpers it builds on are in ``tests/support/``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings

from tests.gateway_fixtures import free_port
from tests.support import databases
from tests.support.processes import Worker, manage
from tests.support.seed import seed

WORKERS = 2
START_TIMEOUT = 30.0

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


@dataclass
class _Template:
    """A database migrated once per session, with the default provider; clusters copy it."""

    name: str
    secret_key: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def _cluster_template(demo_gateway_url, demo_api_key, tmp_path_factory) -> Iterator[_Template]:
    database_url, redis_url = databases.services()
    name = f"sb_tmpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    secret_key = secrets.token_urlsafe(50)
    data_dir = tmp_path_factory.mktemp("cluster-data")
    env = {
        **os.environ,
        **WORKER_SETTINGS,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": databases.with_database(database_url, name),
        "REDIS_URL": redis_url,
        "DJANGO_SECRET_KEY": secret_key,
        "OPENAI_BASE_URL": demo_gateway_url,
        "OPENAI_API_KEY": demo_api_key,
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        # Collected once per session (tests/support/static_files.py).
        "STATIC_ROOT": str(django_settings.STATIC_ROOT),
    }
    databases.create_database(database_url, name)
    try:
        manage(env, "migrate", "--noinput", "-v0")
        # The default provider (from OPENAI_BASE_URL/KEY) once, not raced by two workers.
        seed(env, default_provider=True)
        yield _Template(name=name, secret_key=secret_key, env=env)
    finally:
        databases.drop_database(database_url, name)


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

    def create_user(self, username: str, password: str, *, staff: bool = False) -> int:
        user = {"username": username, "password": password, "superuser": staff}
        return seed(self.env, users=[user])["users"][username]

    def create_thread(self, owner_username: str, title: str = "A chat") -> int:
        return seed(self.env, threads=[{"owner": owner_username, "title": title}])["threads"][0]

    def sql(self, query: str, params: tuple | dict | None = None) -> list[dict]:
        """Rows of a query on the cluster's database, as dicts."""
        return databases.rows(self.database_url, query, params)

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
    database_url, redis_url = databases.services()
    if "redis_server" in request.fixturenames:
        redis_url = request.getfixturevalue("redis_server").url
    name = f"sb_cluster_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    prefix = f"switchboard-cluster-{uuid.uuid4().hex[:12]}."
    databases.create_database(database_url, name, template=_cluster_template.name)
    cluster_url = databases.with_database(database_url, name)
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
            databases.drop_database(database_url, name)
        with suppress(Exception):
            databases.delete_prefix(redis_url, prefix)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    cluster = getattr(item, "funcargs", {}).get("worker_cluster")
    if report.failed and isinstance(cluster, WorkerCluster):
        report.sections.append(("worker logs", cluster.logs()))
    return report

"""Pytest plugin: a Redis server of the test's own (``redis_server``), which it may restart.

The scale-out tests otherwise share one Redis (``.ci/services.sh``); a test that restarts Redis
must not pull it from under the others running side by side. Needs ``redis-server`` (Debian's
``redis-server`` package, which ``.ci/services.sh`` installs).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_fixtures import free_port

START_TIMEOUT = 10.0


class RedisServer:
    """``redis-server`` on a free port of 127.0.0.1, without persistence: a restart empties it,
    as a restart of a cache-only Redis does in production."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (bash .ci/services.sh installs it)")
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def answers(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # Redis closes every client connection and exits
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, down: float = 1.0) -> None:
        """Stop, stay down ``down`` seconds, start again (empty) on the same port."""
        self.stop()
        time.sleep(down)
        self.start()


@pytest.fixture
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()

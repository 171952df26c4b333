"""Pytest plugin: the demo gateway served by a real Daphne process, for tests over real HTTP.

Enable with ``pytest_plugins = ["tests.gateway_fixtures"]`` in the top-level conftest.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# Also imported from here by the other fixture modules.
from devtools.launch import DEMO_GATEWAY_APP, daphne_command, free_port

DEMO_API_KEY = "demo-test-key"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 20.0


@pytest.fixture(scope="session")
def demo_api_key() -> str:
    return DEMO_API_KEY


@pytest.fixture(scope="session")
def demo_gateway_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>/v1``) of a demo gateway running for the session."""
    port = free_port()
    env = {
        **os.environ,
        "DEMO_API_KEY": DEMO_API_KEY,
        "DEMO_CHUNK_DELAY_MS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            daphne_command(port, DEMO_GATEWAY_APP),
            cwd=_REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}/v1"
            _wait_until_ready(process, url, log)
            yield url
        finally:
            stop_process(process)


def _wait_until_ready(process: subprocess.Popen, url: str, log: Any) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/models", headers=headers, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    pytest.fail(f"the demo gateway did not start at {url}:\n{output}", pytrace=False)


@pytest.fixture
def demo_requests(demo_gateway_url: str) -> Callable[[], list[dict[str, Any]]]:
    """Forgets earlier requests, then returns ``read()``: the JSON bodies the demo gateway
    received since, oldest first."""
    url = f"{demo_gateway_url}/_demo/requests"
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    httpx.delete(url, headers=headers, timeout=5).raise_for_status()

    def read() -> list[dict[str, Any]]:
        response = httpx.get(url, headers=headers, timeout=5)
        response.raise_for_status()
        return response.json()

    return read


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Ask a server process to exit (SIGTERM), and kill it if it does not within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

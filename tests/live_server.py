"""A real Switchboard (Daphne, its own SQLite file, the mounted demo gateway) for browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.launch import CHROMIUM, CHROMIUM_ARGS, daphne_command, free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def live_app_port() -> int:
    """The live app's port, known before it starts (e.g. for an OpenID Provider's redirect URI)."""
    return free_port()


@pytest.fixture
def live_app(request, tmp_path, live_app_port) -> Iterator[str]:
    """The app under Daphne on its own data directory. Model-written titles are off (their
    background request would add a usage record at an unpredictable moment) unless a test
    asks for them with ``@pytest.mark.live_env(AUTO_TITLES="1")``."""
    port = live_app_port
    marker = request.node.get_closest_marker("live_env")
    env = os.environ | {
        "AUTO_TITLES": "0",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
        "PORT": str(port),
        "DJANGO_SECURE": "0",
        "DEMO_CHUNK_DELAY_MS": "15",
        "SHUTDOWN_GRACE_SECONDS": "2",  # a turn still running at the end delays the stop
    }
    env |= marker.kwargs if marker else {}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    log = (tmp_path / "daphne.log").open("w")
    server = subprocess.Popen(
        daphne_command(port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()

"""A real Switchboard (Daphne, its own SQLite file, the mounted demo gateway) for browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def migrated_data_dir(tmp_path_factory) -> Callable[[dict, dict], Path]:
    """A data directory ``manage.py migrate`` made in ``env`` (with a test's own ``live_env``
    variables), made once per test session (about 4 s each) and copied for each live app."""
    made: dict[tuple, Path] = {}

    def data_dir(env: dict, own: dict) -> Path:
        key = tuple(sorted(own.items()))
        if key not in made:
            directory = tmp_path_factory.mktemp("migrated")
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=ROOT,
                env=env | {"SWITCHBOARD_DATA_DIR": str(directory)},
                check=True,
            )
            made[key] = directory
        return made[key]

    return data_dir


@pytest.fixture
def live_app(request, tmp_path, live_app_port, migrated_data_dir) -> Iterator[str]:
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
    own_env = marker.kwargs if marker else {}
    env |= own_env
    shutil.copytree(migrated_data_dir(env, own_env), tmp_path, dirs_exist_ok=True)
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

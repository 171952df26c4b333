"""Processes a test starts: ``manage.py`` commands and Daphne workers, with their logs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_fixtures import daphne_command

ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL = 4000


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run ``manage.py`` with ``args`` in the environment ``env``; its stdout (fails the test
    with the output's tail when the command fails)."""
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


def tail(path: Path, size: int = LOG_TAIL) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as exc:
        return f"(no log: {exc})"


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
        return tail(self.log_path, size)

"""Shared helpers of the benchmark: ports, processes, /proc readings and percentiles."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the bench scripts run from bench/, and use the project's modules
from devtools.launch import CHROMIUM as CHROMIUM  # noqa: E402  (re-exported)
from devtools.launch import CHROMIUM_ARGS as CHROMIUM_ARGS  # noqa: E402
from devtools.launch import daphne_command as daphne_command  # noqa: E402
from devtools.launch import demo_gateway_command as demo_gateway_command  # noqa: E402
from devtools.launch import free_port as free_port  # noqa: E402

PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-password-42"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (utime + stime from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces; fields after its closing parenthesis are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB (VmRSS from /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Process:
    """A child process in its own process group, always stopped with its children."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("w")
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        self._log.close()


def wait_http(url: str, process: Process, timeout: float = 30.0, headers: dict | None = None):
    """Wait until ``url`` answers (any status); raise with the process log if it never does."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            break
        try:
            return httpx.get(url, timeout=1.0, headers=headers)
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer at {url}:\n{process.log_tail()}")

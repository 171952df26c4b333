"""How tests and the benchmark launch things: Chromium, Daphne, the demo gateway, free ports.

One definition, so that the browser tests and ``make bench`` measure the same set-up. Plain
standard library: the bench scripts import it without Django or pytest.
"""

from __future__ import annotations

import socket
import sys

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright drives it (no downloaded browser)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
APP = "project.asgi:application"
DEMO_GATEWAY_APP = "demo_gateway.asgi:application"


def free_port() -> int:
    """A TCP port nothing listens on right now (also handy as a "connection refused" target)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Daphne pings every open websocket every 20 s by default: at 5,000 idle sockets that was most of
# the idle CPU (bench #15). Every 60 s still finds a dead peer within 90 s (ping timeout 30 s);
# nginx's websocket read timeout is an hour (docs/deploy/nginx.conf). Production: the same in
# docs/deploy/switchboard@.service and `make run`.
DAPHNE_OPTIONS = ("--ping-interval", "60")


def daphne_command(port: int, app: str = APP) -> list[str]:
    """The command line of a Daphne process serving ``app`` on 127.0.0.1:``port``."""
    listen = ["-b", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "daphne", *DAPHNE_OPTIONS, *listen, app]


def demo_gateway_command(port: int, *, api_key: str, delay_ms: int) -> list[str]:
    """``python -m demo_gateway`` on 127.0.0.1:``port``, requiring ``api_key``, paced."""
    return [
        sys.executable,
        "-m",
        "demo_gateway",
        "--port",
        str(port),
        "--api-key",
        api_key,
        "--delay-ms",
        str(delay_ms),
    ]

"""What a starting server does once: default provider, and turns a dead worker left running."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings

log = logging.getLogger(__name__)


def demo_gateway_key() -> str:
    """The mounted demo gateway only answers Switchboard itself, never anonymous callers."""
    return (
        "demo-"
        + hashlib.sha256(b"switchboard-demo:" + settings.SECRET_KEY.encode()).hexdigest()[:32]
    )


def warn_about_loose_file_modes() -> None:
    """Daphne runs no system checks: say it in the server's log too."""
    from chat.checks import loose_file_modes

    for problem in loose_file_modes():
        log.warning("%s It holds sessions, password hashes or the secret key.", problem)


def on_server_start() -> None:
    from chat.services.providers import ensure_default_provider
    from chat.services.turns.registry import mark_interrupted_turns

    warn_about_loose_file_modes()
    ensure_default_provider()
    # Only turns whose heartbeat is stale: other workers may be generating the rest right now.
    interrupted = mark_interrupted_turns()
    if interrupted:
        log.info("marked %d unfinished turn(s) as interrupted", len(interrupted))

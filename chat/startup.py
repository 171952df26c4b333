"""What a starting server does once: default provider, and turns a dead process left running."""

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


def on_server_start() -> None:
    from chat.services.generation import mark_interrupted_turns
    from chat.services.providers import ensure_default_provider

    ensure_default_provider()
    interrupted = mark_interrupted_turns()
    if interrupted:
        log.info("marked %d unfinished turn(s) as interrupted", interrupted)

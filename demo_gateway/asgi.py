"""``daphne demo_gateway.asgi:application``: a demo gateway configured from the environment.

``DEMO_API_KEY`` (a Bearer key to require), ``DEMO_CHUNK_DELAY_MS`` (default 20),
``DEMO_WORDS_PER_CHUNK`` (default 1), ``DEMO_RECORD_REQUESTS`` (default 50).
"""

from __future__ import annotations

import os

from demo_gateway.app import make_app


def _env_number(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


application = make_app(
    api_key=os.environ.get("DEMO_API_KEY") or None,
    chunk_delay=_env_number("DEMO_CHUNK_DELAY_MS", 20) / 1000,
    words_per_chunk=_env_number("DEMO_WORDS_PER_CHUNK", 1),
    record_requests=_env_number("DEMO_RECORD_REQUESTS", 50),
)

"""How soon a thread waiting for the GIL gets it from a busy event loop (the serving process).

Why: the database work of a turn runs in one worker thread; each query releases the GIL while
SQLite or the PostgreSQL driver works and must win it back from the event loop, which holds it
for as long as it has callbacks to run. Python hands the GIL over only every switch interval
(5 ms by default), so under load a turn's start (about 15 statements in one hop) waited up to
5 ms per statement: issue 20's first-token timeline measured 25 ms for that hop at 100 streams
against 6 ms at one. ``GIL_SWITCH_INTERVAL_MS`` (1 ms by default) shortens the hand-over; bench
#1 shows the effect (bench/README.md).
"""

from __future__ import annotations

import sys

from django.conf import settings


def tune_for_serving() -> None:
    """Call once, at start-up (``project/asgi.py``)."""
    sys.setswitchinterval(settings.GIL_SWITCH_INTERVAL_MS / 1000)

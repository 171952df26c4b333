"""Figures measured inside one Python process (run by bench/run.py as a subprocess).

``queries``   #5: database queries of whole turns (the websocket consumer and the generation
              task, as ``tests/test_generation.py`` counts them) for a short and a long answer,
              streamed from the separately started demo gateway. Needs the app's settings.
``markdown``  #6: total cost of streaming-rendering a 10 KB and a 100 KB markdown answer with
              ``chat.markdown.StreamingMarkdown``, flushed as the app flushes it.

    python bench/inproc.py queries '{"gateway": "...", "api_key": "...", "chunks": [100, 10000]}'
    python bench/inproc.py markdown '{"sizes_kb": [10, 100], "chunks_per_flush": 2}'
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A markdown answer with what makes rendering expensive: headings, inline markup, nested
# lists, fenced code that Pygments highlights, numbered lists.
UNIT = """## Section {n}

Some text explaining **step {n}**, with `inline code` and a [link](https://example.com/{n}).

- first point about item {n}
- second point, a bit longer so that the line wraps in a browser window
- third point with `code` in it
  - a nested point

```python
def step_{n}(values: list[int]) -> int:
    total = 0
    for value in values:
        total += value * {n}
    return total
```

1. numbered one
2. numbered two, *emphasised*
3. numbered three

"""


def markdown_text(size_kb: int) -> str:
    parts: list[str] = []
    size, n = 0, 0
    while size < size_kb * 1024:
        n += 1
        parts.append(UNIT.format(n=n))
        size += len(parts[-1])
    return "".join(parts)[: size_kb * 1024]


def measure_markdown(spec: dict) -> dict:
    from chat.markdown import StreamingMarkdown

    every = spec.get("chunks_per_flush", 2)
    results = {}
    for size_kb in spec["sizes_kb"]:
        # Deltas are words with the whitespace before them, as the demo gateway sends them.
        deltas = re.findall(r"\s*\S+", markdown_text(size_kb))
        streaming = StreamingMarkdown()
        flushes = 0
        longest = 0.0
        started = time.perf_counter()
        for number, delta in enumerate(deltas, 1):
            streaming.append(delta)
            if number % every == 0 or number == len(deltas):
                before = time.perf_counter()
                streaming.flush()
                longest = max(longest, time.perf_counter() - before)
                flushes += 1
        total = time.perf_counter() - started
        results[str(size_kb)] = {
            "seconds": total,
            "deltas": len(deltas),
            "flushes": flushes,
            "longest_flush_ms": longest * 1000,
            "html_kb": (sum(map(len, streaming.blocks)) + len(streaming.tail_html)) / 1024,
        }
    return results


def measure_queries(spec: dict) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    # A first answer starts a background title request, whose queries would land in the count
    # of whichever turn is being measured: #5 counts a turn's own queries.
    os.environ["AUTO_TITLES"] = "0"
    from project.startup_files import setup_django

    setup_django()  # the start-up step first: data directory, secret key
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from chat.models import Provider, Thread, Turn
    from chat.routing import websocket_application

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("queries", password="unused-password-1")
    provider = Provider(name="Bench gateway", base_url=spec["gateway"], is_default=True)
    provider.set_api_key(spec["api_key"])
    provider.save()
    # The socket is bound to a login session (chat.services.session_binding): log in as a
    # browser does, and open the socket with its cookie, Host and Origin.
    browser = Client()
    browser.force_login(user)
    cookie = settings.SESSION_COOKIE_NAME
    headers = [
        (b"cookie", f"{cookie}={browser.cookies[cookie].value}".encode()),
        (b"host", b"127.0.0.1"),
        (b"origin", b"http://127.0.0.1"),
    ]

    async def turn_over_websocket(thread: Thread, chunks: int) -> tuple[str, int]:
        path = f"/ws/threads/{thread.pk}/"
        communicator = WebsocketCommunicator(websocket_application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        if not connected:
            raise RuntimeError("the websocket was refused")
        await communicator.send_json_to(
            {"action": "send", "message": f"count #chunks={chunks} #delay=0"}
        )
        deltas = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            html = await communicator.receive_from(timeout=60)
            deltas += '-tail" hx-swap-oob="innerHTML"' in html
            status = re.search(r'<article hx-swap-oob="true" [^>]*data-status="(\w+)"', html)
            if status and status.group(1) != "in_progress":
                await communicator.disconnect()
                return status.group(1), deltas
        raise RuntimeError("the turn did not finish in time")

    results = {}
    for chunks in spec["chunks"]:
        # Each measured turn is the first of its own thread, sent over one open websocket.
        thread = Thread.objects.create(owner=user, provider=provider, model="demo-chat")
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            status, deltas = async_to_sync(turn_over_websocket)(thread, chunks)
        seconds = time.perf_counter() - started
        turn = Turn.objects.get(thread=thread)
        kinds = Counter(q["sql"].split(None, 1)[0].upper() for q in captured.captured_queries)
        results[str(chunks)] = {
            "queries": len(captured.captured_queries),
            "by_kind": dict(kinds),
            "status": status,
            "deltas_sent": deltas,
            "answer_chars": len(turn.output_text),
            "seconds": seconds,
        }
    return results


def main() -> None:
    command, spec = sys.argv[1], json.loads(sys.argv[2])
    measure = {"queries": measure_queries, "markdown": measure_markdown}[command]
    json.dump(measure(spec), sys.stdout)


if __name__ == "__main__":
    main()

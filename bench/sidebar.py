"""How long the sidebar takes to render for a user with 10,000 chats (goal: under 100 ms).

    .venv/bin/python bench/sidebar.py [--chats 10000] [--repeat 200]

Builds a throwaway SQLite database in a temporary directory (migrations, one user with
--chats chats spread over two years: 5 pinned, 10 folders of 20 chats, 100 archived, and 20
chats shared with them), then times, server side, --repeat renders of

- ``sidebar``: the sidebar's first page as every chat page draws it (its queries and template);
- ``more``: the request that loads the next page as the user scrolls (whole request, through
  Django's test client: middleware, session, queries, template).

Prints p50 and p99 in ms. ``measure() -> dict`` returns the same figures for a harness.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import time
from datetime import timedelta
from html import unescape
from pathlib import Path

from dashboard_render import setup_django  # the same throwaway database set-up

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 100.0


def seed(chats: int) -> object:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from chat.models import Folder, Thread, ThreadShare

    rng = random.Random(19)
    User = get_user_model()
    user = User.objects.create_user("reader", password="bench-password-19")
    other = User.objects.create_user("writer", password="bench-password-19")
    folders = [Folder.objects.create(owner=user, name=f"Folder {i}") for i in range(10)]
    now = timezone.now()
    rows = []
    for number in range(chats):
        rows.append(
            Thread(
                owner=user,
                title=f"Chat {number}: "
                + " ".join(rng.choices(["plan", "trip", "code", "notes"], k=4)),
                pinned_at=now if number < 5 else None,
                folder=folders[number % 10] if 5 <= number < 205 else None,
                archived_at=now if 205 <= number < 305 else None,
            )
        )
    Thread.objects.bulk_create(rows, batch_size=2000)
    # Spread the activity over two years (bulk_create set every updated_at to now).
    for thread in Thread.objects.filter(owner=user).only("pk"):
        Thread.objects.filter(pk=thread.pk).update(
            updated_at=now - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
        )
    for number in range(20):
        shared = Thread.objects.create(owner=other, title=f"Shared {number}")
        ThreadShare.objects.create(thread=shared, user=user, access="read")
    return user


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2)}


def measure(chats: int = 10_000, repeat: int = 200) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-sidebar-") as data_dir:
        setup_django(data_dir)
        from django.db import connection
        from django.template.loader import render_to_string
        from django.test import Client

        from chat.services import sidebar

        user = seed(chats)

        def render_sidebar() -> str:
            return render_to_string("chat/sidebar.html#lists", sidebar.sidebar_context(user))

        html = render_sidebar()  # warm the template cache
        rows = html.count('class="chat-item"')
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            render_sidebar()
            timings.append((time.perf_counter() - started) * 1000)
        client = Client()
        client.force_login(user)
        more = unescape(re.search(r'hx-get="(/sidebar/more/\?after=[^"]+)"', html).group(1))
        assert client.get(more).status_code == 200
        more_timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(more)
            more_timings.append((time.perf_counter() - started) * 1000)
        connection.close()
    return {
        "chats": chats,
        "rows_rendered": rows,
        "sidebar": percentiles(timings),
        "more": percentiles(more_timings),
        "goal_ms": GOAL_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    result = measure(args.chats, args.repeat)
    print(
        f"sidebar of a user with {result['chats']:,} chats ({result['rows_rendered']} rows drawn)"
    )
    for name in ("sidebar", "more"):
        figures = result[name]
        met = "met" if figures["p99_ms"] < GOAL_MS else "NOT met"
        print(
            f"  {name:8} p50 {figures['p50_ms']:7.2f} ms   p99 {figures['p99_ms']:7.2f} ms"
            f"   (goal < {GOAL_MS:.0f} ms: {met})"
        )


if __name__ == "__main__":
    main()

"""How long a Prometheus scrape of /metrics takes with 10,000 turns and 100,000 usage records.

    .venv/bin/python bench/metrics_scrape.py [--turns 10000] [--records 100000] [--repeat 50]

Builds a throwaway SQLite database in a temporary directory (migrations, 50 users, 3 providers,
8 models, turns of every status, usage records over the last year, 2,000 failed logins in the
audit log), then GETs /metrics with the bearer token through Django's test client (the whole
request: middleware, the scrape-time database queries, the text exposition) --repeat times.
Prints p50/p99 in ms; ``measure()`` returns them for the bench harness.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import timedelta

from common import percentile  # bench/ is on the path: run as a script or from bench/run.py
from dashboard_render import setup_django

TOKEN = "bench-metrics-token"


def seed(turns: int, records: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from chat.models import AuditLogEntry, Provider, Thread, Turn, UsageRecord

    rng = random.Random(7)
    User = get_user_model()
    User.objects.bulk_create([User(username=f"user{i:02d}") for i in range(50)])
    users = list(User.objects.all())
    providers = [
        Provider.objects.create(name=f"Gateway {i}", base_url=f"https://gw{i}.example/v1")
        for i in range(3)
    ]
    models = [f"model-{name}" for name in "abcdefgh"]
    threads = Thread.objects.bulk_create(
        [Thread(owner=rng.choice(users), title=f"chat {i}") for i in range(turns // 10)]
    )
    statuses = [s for s in Turn.Status.values if s != Turn.Status.IN_PROGRESS]
    now = timezone.now()
    Turn.objects.bulk_create(
        [
            Turn(
                thread=threads[i % len(threads)],
                author=threads[i % len(threads)].owner,
                user_text="question",
                output_text="answer",
                status=Turn.Status.IN_PROGRESS if i < 5 else rng.choice(statuses),
                provider=providers[i % 3],
                model=rng.choice(models),
                input_tokens=rng.randrange(20, 4000),
                output_tokens=rng.randrange(1, 2000),
            )
            for i in range(turns)
        ],
        batch_size=2000,
    )
    batch = []
    for i in range(records):
        provider = providers[i % 3]
        batch.append(
            UsageRecord(
                created_at=now - timedelta(seconds=rng.randrange(365 * 86400)),
                user=rng.choice(users),
                provider=provider,
                provider_name=provider.name,
                model=rng.choice(models),
                api="responses",
                status="completed",
                input_tokens=rng.randrange(20, 8000),
                output_tokens=rng.randrange(1, 3000),
            )
        )
        if len(batch) == 5000:
            UsageRecord.objects.bulk_create(batch)
            batch = []
    UsageRecord.objects.bulk_create(batch)
    AuditLogEntry.objects.bulk_create(
        [
            AuditLogEntry(
                object_type="login", object_repr=f"user{i % 50:02d}", action="login failed"
            )
            for i in range(2000)
        ]
    )


def measure(turns: int = 10_000, records: int = 100_000, repeat: int = 50) -> dict:
    """Scrape times in ms (p50, p99) and the size of one scrape; seeds its own database."""
    with tempfile.TemporaryDirectory() as data_dir:
        setup_django(data_dir)
        from django.conf import settings
        from django.test import Client

        settings.METRICS_TOKEN = TOKEN
        seed(turns, records)
        client = Client()
        headers = {"authorization": f"Bearer {TOKEN}"}
        first = client.get("/metrics", headers=headers)  # warm: connection, templates, imports
        if first.status_code != 200:
            raise RuntimeError(f"/metrics answered {first.status_code}")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get("/metrics", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
        return {
            "turns": turns,
            "usage_records": records,
            "scrapes": repeat,
            "p50_ms": round(percentile(times, 50), 2),
            "p99_ms": round(percentile(times, 99), 2),
            "bytes": len(first.content),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    result = measure(args.turns, args.records, args.repeat)
    print(
        f"/metrics scrape with {result['turns']:,} turns and {result['usage_records']:,} usage "
        f"records: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
        f"({result['scrapes']} scrapes, {result['bytes']:,} bytes each)"
    )


if __name__ == "__main__":
    main()

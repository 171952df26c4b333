"""How long the staff usage dashboard takes to render with 100,000 usage records.

    .venv/bin/python bench/dashboard_render.py [--records 100000] [--repeat 5]

Builds a throwaway SQLite database in a temporary directory (migrations, 50 users, 3 providers,
8 models, records spread over the last 365 days), then renders /admin/usage/ through Django's
test client (the whole request: middleware, SQL aggregates, template) for a few filter sets,
and the CSV export of the default range. Prints the median of --repeat runs for each.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(data_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    os.environ["SWITCHBOARD_DATA_DIR"] = data_dir
    os.environ.pop("SQLITE_PATH", None)
    os.environ["DJANGO_SECURE"] = "0"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from project.startup_files import setup_django

    setup_django()  # the start-up step first: data directory, secret key
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's "testserver" host in
    call_command("migrate", verbosity=0)


def generate(count: int) -> object:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from chat.models import Provider, UsageRecord

    rng = random.Random(42)
    User = get_user_model()
    staff = User.objects.create_user("staff", password="bench-password-42")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    users = [User(username=f"user{i:02d}") for i in range(50)]
    User.objects.bulk_create(users)
    users = list(User.objects.exclude(pk=staff.pk))
    providers = [
        Provider.objects.create(name=f"Gateway {i}", base_url=f"https://gw{i}.example/v1")
        for i in range(3)
    ]
    models = [f"model-{name}" for name in "abcdefgh"]
    now = timezone.now()
    batch = []
    for i in range(count):
        provider = providers[i % 3]
        inp, out = rng.randrange(20, 8000), rng.randrange(1, 3000)
        batch.append(
            UsageRecord(
                created_at=now - timedelta(seconds=rng.randrange(365 * 86400)),
                user=rng.choice(users),
                provider=provider,
                provider_name=provider.name,
                model=rng.choice(models),
                api="responses",
                status="completed",
                input_tokens=inp,
                cached_tokens=inp // 4,
                output_tokens=out,
                reasoning_tokens=out // 5,
                total_tokens=inp + out,
                cost=(Decimal(inp) * 2 + Decimal(out) * 8) / 1_000_000,
            )
        )
        if len(batch) == 5000:
            UsageRecord.objects.bulk_create(batch)
            batch = []
    UsageRecord.objects.bulk_create(batch)
    return staff, users


def timed(client, url: str, params: dict, repeat: int) -> tuple[float, int]:
    samples, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, params)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        size = len(body)
    return statistics.median(samples), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as data_dir:
        setup_django(data_dir)
        from django.test import Client
        from django.utils import timezone

        started = time.perf_counter()
        staff, users = generate(args.records)
        print(f"generated {args.records:,} usage records in {time.perf_counter() - started:.1f} s")
        client = Client()
        client.force_login(staff)
        client.get("/admin/usage/")  # warm up: template compilation, first connection
        today = timezone.localdate()
        year_ago = (today - timedelta(days=364)).isoformat()
        cases = [
            ("default: last 30 days, by day", "/admin/usage/", {}),
            ("whole year, by day", "/admin/usage/", {"start": year_ago}),
            ("whole year, by week", "/admin/usage/", {"start": year_ago, "granularity": "week"}),
            (
                "whole year, by month",
                "/admin/usage/",
                {"start": year_ago, "granularity": "month"},
            ),
            (
                "whole year, one user and model",
                "/admin/usage/",
                {"start": year_ago, "user": users[0].pk, "model": "model-c"},
            ),
            ("CSV export, last 30 days", "/admin/usage/export.csv", {}),
        ]
        print(f"median of {args.repeat} renders with {args.records:,} records:")
        for name, url, params in cases:
            seconds, size = timed(client, url, params, args.repeat)
            print(f"  {name:<34} {seconds * 1000:8.0f} ms  ({size / 1024:,.0f} KiB)")


if __name__ == "__main__":
    main()

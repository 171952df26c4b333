"""Fills a fresh Switchboard database for the benchmark (run with the app's settings and data dir).

Creates the users the load generator logs in as, the provider pointing at the separately started
demo gateway, empty threads (one per measured stream, so every measured turn is the first of its
thread), and two finished threads for the page figures: one of many turns and one of one turn.
Prints a JSON description on stdout.

    SWITCHBOARD_DATA_DIR=… python bench/seed.py --gateway URL --api-key KEY --users 8 --threads 400
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True, help="the demo gateway's base URL, …/v1")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--threads", type=int, default=100, help="empty threads, in total")
    parser.add_argument("--page-turns", type=int, default=500)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()

    from project.startup_files import setup_django

    setup_django()  # the start-up step first: data directory, secret key
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from chat.models import Provider, Thread, Turn
    from demo_gateway import compose_answer

    User = get_user_model()
    password_hash = make_password(args.password)  # hashed once: hashing is slow on purpose
    with transaction.atomic():
        Provider.objects.update(is_default=False)
        provider = Provider(name="Bench demo gateway", base_url=args.gateway, is_default=True)
        provider.set_api_key(args.api_key)
        provider.save()

        names = [f"bench{i}" for i in range(args.users)]
        User.objects.bulk_create(
            User(username=name, email=f"{name}@example.com", password=password_hash)
            for name in names
        )
        users = list(User.objects.filter(username__in=names).order_by("pk"))
        # Round-robin owners, so the i-th thread belongs to the (i mod users)-th user.
        Thread.objects.bulk_create(
            Thread(
                owner=users[i % len(users)],
                provider=provider,
                model="demo-chat",
                title=f"Bench thread {i}",
            )
            for i in range(args.threads)
        )
        threads = list(
            Thread.objects.filter(owner__in=users).order_by("pk").values_list("pk", "owner_id")
        )
        owner_index = {user.pk: index for index, user in enumerate(users)}

        # The page figures: a long finished thread, a 40-turn and a one-turn thread, owned by a
        # page user.
        page_user = User.objects.create(
            username="benchpage", email="benchpage@example.com", password=password_hash
        )
        pages = {}
        for label, count in (("long", args.page_turns), ("short", 1), ("forty", 40)):
            thread = Thread.objects.create(
                owner=page_user, provider=provider, model="demo-chat", title=f"{count} turns"
            )
            now = timezone.now()
            turns = Turn.objects.bulk_create(
                Turn(
                    thread=thread,
                    author=page_user,
                    user_text=f"Question {n + 1}: how do lists, code and tables render?",
                    output_text=compose_answer(f"Question {n + 1} about rendering", n + 1),
                    status=Turn.Status.COMPLETED,
                    provider=provider,
                    model="demo-chat",
                    input_tokens=40,
                    output_tokens=120,
                    total_tokens=160,
                    time_to_first_token_ms=12,
                    duration_ms=900,
                    finished_at=now,
                )
                for n in range(count)
            )
            for parent, child in itertools.pairwise(turns):
                child.parent_id = parent.pk
            Turn.objects.bulk_update(turns[1:], ["parent"])
            thread.current_turn = turns[-1]
            thread.save(update_fields=["current_turn"])
            pages[label] = thread.pk
        for label in ("stream", "stream_small"):  # empty threads the browser streams into
            pages[label] = Thread.objects.create(
                owner=page_user, provider=provider, model="demo-chat", title=label
            ).pk

    json.dump(
        {
            "provider_id": provider.pk,
            "users": [user.username for user in users],
            "page_user": page_user.username,
            # [thread id, index of its owner in "users"]
            "threads": [[pk, owner_index[owner]] for pk, owner in threads],
            "pages": pages,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

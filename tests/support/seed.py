"""Create accounts and data in the database of a Switchboard started by a test.

A test describes what it needs as data (a JSON document, see :func:`create`); ``python -m
tests.support.seed`` reads it on stdin and creates it through the ORM, in a separate process set
up with the app's environment (its ``SWITCHBOARD_DATA_DIR`` or ``DATABASE_URL``), so no code is
assembled in strings and the app's own settings decide which database is written. It prints the
ids it created as JSON.

The document (every key optional)::

    {"default_provider": true,
     "users": [{"username": "alice", "password": "…", "email": "", "superuser": false}],
     "teams": [{"name": "Research", "members": ["alice"], "token_budget_per_month": 100}],
     "model_settings": [{"model": "gpt-5.4", "teams": ["Research"], "price_input": "2.5"}],
     "usage": [{"user": "alice", "total_tokens": 90}],
     "threads": [{"owner": "alice", "title": "A chat", "model": "demo-chat"}]}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def seed(env: dict[str, str], **document: Any) -> dict[str, Any]:
    """Create ``document`` (see the module's docstring) with the app environment ``env``; the
    ids created: ``{"users": {username: id}, "threads": [id, …]}``."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.seed"],
        input=json.dumps(document),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode:
        raise RuntimeError(f"seeding failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def seed_data_dir(data_dir: Path | str, **document: Any) -> dict[str, Any]:
    """:func:`seed` for the live app of ``tests/live_server.py`` (SQLite in ``data_dir``)."""
    env = os.environ | {
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    return seed(env, **document)


def create(document: dict[str, Any]) -> dict[str, Any]:
    """Create what ``document`` describes, in one transaction; the ids created."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from chat.models import ModelSetting, Provider, Team, Thread, UsageRecord
    from chat.services.providers import ensure_default_provider

    User = get_user_model()
    with transaction.atomic():
        provider = ensure_default_provider() if document.get("default_provider") else None
        users = {}
        for spec in document.get("users", []):
            make = (
                User.objects.create_superuser if spec.get("superuser") else User.objects.create_user
            )
            user = make(spec["username"], spec.get("email", ""), spec["password"])
            users[user.username] = user
        for spec in document.get("teams", []):
            limits = {k: v for k, v in spec.items() if k == "token_budget_per_month"}
            team = Team.objects.create(name=spec["name"], **limits)
            team.members.add(*(users[name] for name in spec.get("members", [])))
        for spec in document.get("model_settings", []):
            provider = provider or Provider.objects.get(is_default=True)
            prices = {k: v for k, v in spec.items() if k in ("price_input", "price_output")}
            setting = ModelSetting.objects.create(provider=provider, model=spec["model"], **prices)
            setting.allowed_teams.add(*Team.objects.filter(name__in=spec.get("teams", [])))
        for spec in document.get("usage", []):
            UsageRecord.objects.create(user=users[spec["user"]], total_tokens=spec["total_tokens"])
        threads = [
            Thread.objects.create(
                owner=User.objects.get(username=spec["owner"]),
                provider=provider or Provider.objects.get(is_default=True),
                model=spec.get("model", "demo-chat"),
                title=spec.get("title", "A chat"),
            ).pk
            for spec in document.get("threads", [])
        ]
    return {"users": {name: user.pk for name, user in users.items()}, "threads": threads}


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    print(json.dumps(create(json.load(sys.stdin))))


if __name__ == "__main__":
    main()

"""A live Switchboard (Daphne, its own SQLite file, the mounted demo gateway as upstream) with
users, keys and model settings made for the API tests; the tests read its database directly."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devtools.launch import daphne_command, free_port

ROOT = Path(__file__).resolve().parent.parent
CLIENT_IP_HEADER = "X-Test-Client"
KEY_FAILURES_PER_IP = 5

SETUP = """
import json
from django.contrib.auth.models import User
from chat.api.keys import create_key
from chat.models import ApiAccess, ModelSetting, UserQuota
from chat.services.providers import ensure_default_provider

provider = ensure_default_provider()
ModelSetting.objects.create(provider=provider, model="gpt-5.4", fallback_models=["gpt-5.4-mini"])
ModelSetting.objects.create(provider=provider, model="demo-reasoner", enabled=False)
keys = {}
for name in ("ann", "bob", "carol", "dave", "erin"):
    user = User.objects.create_user(name, password="unused-" + name)
    keys[name] = create_key(user, name + "'s key")[1]
keys["ann_mini"] = create_key(User.objects.get(username="ann"), "mini only",
                              allowed_models=["gpt-5.4-mini"])[1]
UserQuota.objects.create(user=User.objects.get(username="carol"), requests_per_minute=2)
UserQuota.objects.create(user=User.objects.get(username="dave"), tokens_per_day=1)
ApiAccess.objects.create(user=User.objects.get(username="erin"), enabled=False)
print("KEYS=" + json.dumps(keys))
"""


@dataclass
class ApiSite:
    url: str
    db: Path
    keys: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.url + "/api/v1"

    def query(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(self.db, timeout=10) as conn:
            return conn.execute(sql, args).fetchall()

    def execute(self, sql: str, *args) -> None:
        with sqlite3.connect(self.db, timeout=10) as conn:
            conn.execute(sql, args)

    def key_id(self, name: str) -> int:
        prefix = self.keys[name][:10]
        return self.query("select id from chat_apikey where prefix = ?", prefix)[0][0]

    def records(self, key: str) -> list[dict]:
        rows = self.query(
            "select model, status, source, input_tokens, output_tokens, total_tokens, "
            "estimated, user_id, image_tokens, audio_tokens from chat_usagerecord "
            "where api_key_id = ? order by id",
            self.key_id(key),
        )
        names = (
            *("model", "status", "source", "input", "output", "total", "estimated", "user"),
            *("image", "audio"),
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    def wait_for_record(self, key: str, count: int, timeout: float = 10.0) -> list[dict]:
        """The key's records once there are ``count`` and none is still in progress."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records(key)
            running = any(r["status"] == "in_progress" for r in records)
            if (len(records) >= count and not running) or time.monotonic() > deadline:
                return records
            time.sleep(0.05)

    def revoke(self, key: str) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        self.execute("update chat_apikey set revoked_at = ? where id = ?", now, self.key_id(key))


@pytest.fixture(scope="module")
def api_site(tmp_path_factory, migrated_data_dir) -> Iterator[ApiSite]:
    data = tmp_path_factory.mktemp("api-site")
    port = free_port()
    own_env = {
        "DEMO_CHUNK_DELAY_MS": "2",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOGIN_CLIENT_IP_HEADER": CLIENT_IP_HEADER,
        "API_KEY_FAILURES_PER_IP": str(KEY_FAILURES_PER_IP),
        "API_KEY_RECHECK_SECONDS": "0.2",
        "API_RETRY_AFTER_CAP_SECONDS": "3",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SWITCHBOARD_DATA_DIR": str(data),
        "PORT": str(port),
        "DJANGO_SECURE": "0",
        **own_env,
    }
    shutil.copytree(migrated_data_dir(env, own_env), data, dirs_exist_ok=True)
    manage = [sys.executable, "manage.py"]
    out = subprocess.run(
        [*manage, "shell", "-c", SETUP],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keys = json.loads(next(line for line in out.splitlines() if line.startswith("KEYS="))[5:])
    log = (data / "daphne.log").open("w")
    server = subprocess.Popen(
        daphne_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield ApiSite(url, data / "db.sqlite3", keys)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()

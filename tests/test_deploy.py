"""Deployment: /healthz, the production settings check, and settings chosen by the environment.

With ``DATABASE_URL`` and ``REDIS_URL`` set (``make test-scaleout``) the health check runs
against PostgreSQL and Redis, and the deploy check is also run with them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError

from chat import health

ROOT = Path(__file__).resolve().parent.parent
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CHANNEL_LAYER_PREFIX", "CONN_MAX_AGE")


@pytest.fixture
def quick_timeouts(monkeypatch):
    monkeypatch.setattr(health, "CHANNEL_LAYER_TIMEOUT", 0.3)
    monkeypatch.setattr(health, "DATABASE_TIMEOUT", 0.3)


def test_healthz_answers_ok_for_database_and_channel_layer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_needs_no_login_before_and_after_the_first_account(client, db, make_user):
    # No account yet: every other page leads to the first-run form, /healthz answers.
    assert client.get("/").status_code == 302
    assert client.get("/healthz").status_code == 200
    make_user("alice")
    assert client.get("/").url.startswith("/accounts/login/")
    assert client.get("/healthz").status_code == 200


def test_healthz_is_not_redirected_to_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/accounts/login/").status_code == 301  # everything else is
    assert client.get("/healthz").status_code == 200


class _SilentLayer:
    """A channel layer that accepts messages and never delivers them."""

    async def new_channel(self, prefix: str = "specific") -> str:
        return f"{prefix}.test!silent"

    async def send(self, channel: str, message: dict) -> None:
        return None

    async def receive(self, channel: str) -> dict:
        import asyncio

        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class _BrokenLayer(_SilentLayer):
    async def send(self, channel: str, message: dict) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.parametrize(
    ("layer", "words"), [(_SilentLayer, "no message back"), (_BrokenLayer, "Connection refused")]
)
def test_healthz_names_a_broken_channel_layer(
    client, db, monkeypatch, quick_timeouts, layer, words
):
    monkeypatch.setattr(health, "get_channel_layer", layer)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["channel_layer"] == "error" and body["database"] == "ok"
    assert list(body["errors"]) == ["channel_layer"]
    assert words in body["errors"]["channel_layer"]


def test_healthz_names_a_failing_database(client, db, monkeypatch):
    def refuse() -> None:
        raise OperationalError('connection to server at "10.0.0.5", port 5432 failed')

    monkeypatch.setattr(health, "_query_database", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "error" and body["channel_layer"] == "ok"
    assert body["errors"]["database"].startswith("OperationalError: connection to server")


@pytest.mark.serial  # timed
async def test_healthz_answers_in_time_when_the_database_hangs(
    async_client, monkeypatch, quick_timeouts
):
    import time

    monkeypatch.setattr(health, "_query_database", lambda: time.sleep(1))
    started = time.monotonic()
    response = await async_client.get("/healthz")
    assert response.status_code == 503 and response.json()["errors"]["database"]
    assert time.monotonic() - started < 1


def test_health_errors_never_show_passwords(settings):
    settings.DATABASE_URL = "postgres://app:db-pass-123@db.internal/switchboard"
    settings.REDIS_URL = "redis://:redis-pass-456@cache.internal:6379/0"
    error = ConnectionError("auth failed: db-pass-123 / redis-pass-456")
    text = health.describe(error)
    assert "db-pass-123" not in text and "redis-pass-456" not in text
    assert text == "ConnectionError: auth failed: *** / ***"


# -- settings chosen by the environment (in a subprocess, as a server would start) -------------


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return (
        env
        | {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "SWITCHBOARD_DATA_DIR": str(tmp_path),
        }
        | extra
    )


_PRINT_SETTINGS = """
import json, os
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "pid": os.getpid(),
    "engine": db["ENGINE"], "name": str(db["NAME"]), "test_name": str(db["TEST"]["NAME"]),
    "host": db.get("HOST"), "port": db.get("PORT"), "user": db.get("USER"),
    "conn_max_age": db["CONN_MAX_AGE"], "health_checks": db.get("CONN_HEALTH_CHECKS", False),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "layer_config": settings.CHANNEL_LAYERS["default"].get("CONFIG", {}),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION", ""),
    "cache_prefix": settings.CACHES["default"].get("KEY_PREFIX", ""),
}))
"""


def _settings_with(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_without_service_urls_one_process_defaults_are_kept(tmp_path):
    found = _settings_with(_environment(tmp_path))
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str(tmp_path / "db.sqlite3")
    assert found["test_name"] == str(tmp_path / f"test-db-{found['pid']}.sqlite3")
    assert "redis" not in found["layer"].lower()
    assert found["cache"] == "django.core.cache.backends.locmem.LocMemCache"


def test_database_url_selects_postgresql_with_persistent_connections(tmp_path):
    url = "postgres://chat:s3cret@127.0.0.1:5433/switchboard"
    found = _settings_with(_environment(tmp_path, DATABASE_URL=url))
    assert found["engine"] == "django.db.backends.postgresql"
    assert (found["host"], found["port"], found["user"]) == ("127.0.0.1", 5433, "chat")
    assert found["name"] == "switchboard"
    assert found["test_name"] == f"test_switchboard_{found['pid']}"  # one per test process
    assert found["conn_max_age"] == 60 and found["health_checks"] is True

    tuned = _settings_with(_environment(tmp_path, DATABASE_URL=url, CONN_MAX_AGE="0"))
    assert tuned["conn_max_age"] == 0


def test_redis_url_selects_the_redis_channel_layer_and_cache(tmp_path):
    url = "redis://127.0.0.1:6380/2"
    found = _settings_with(_environment(tmp_path, REDIS_URL=url))
    assert found["layer"] == "chat.channel_layer.ResilientRedisChannelLayer"
    assert [host["address"] for host in found["layer_config"]["hosts"]] == [url]
    assert found["layer_config"]["prefix"] == "switchboard"
    assert found["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert found["cache_location"] == url and found["cache_prefix"] == "switchboard"

    other = _settings_with(_environment(tmp_path, REDIS_URL=url, CHANNEL_LAYER_PREFIX="chat2"))
    assert other["layer_config"]["prefix"] == "chat2" and other["cache_prefix"] == "chat2"


def _deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    production = {
        "DJANGO_ALLOWED_HOSTS": "chat.example.org",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.org",
        "DEMO_GATEWAY_ENABLED": "0",
        "DJANGO_DEBUG": "0",
        "FIRST_RUN_SETUP": "0",  # the administrator comes from `manage.py createsuperuser`
    }
    variants = [_environment(tmp_path, **production)]
    services = {name: os.environ[name] for name in SERVICE_VARIABLES if os.environ.get(name)}
    if services:  # make test-scaleout: the same check with PostgreSQL and Redis configured
        variants.append(_environment(tmp_path, **production, **services))
    for env in variants:
        result = _deploy_check(env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "no issues" in result.stdout

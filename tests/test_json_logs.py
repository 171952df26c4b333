"""``LOG_FORMAT=json``: one JSON object per line, with request / turn / user ids where known and
never the text of a message."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chat.log_context import JsonFormatter
from chat.models import Turn
from chat.services import fallbacks
from chat.services.turns import launch, registry

ROOT = Path(__file__).resolve().parent.parent


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def objects(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def json_lines():
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_a_request_logs_its_request_id_and_user(logged_in_client, user, json_lines):
    response = logged_in_client.get("/t/987654/")
    assert response.status_code == 404
    (entry,) = [e for e in json_lines.objects() if e["logger"] == "django.request"]
    assert entry["level"] == "WARNING"
    assert entry["message"] == "Not Found: /t/987654/"
    assert entry["request_id"] == response["X-Request-ID"]
    assert len(entry["request_id"]) == 32
    assert entry["user_id"] == user.pk
    assert {"time", "level", "logger", "message"} <= set(entry)
    assert all("\n" not in line for line in json_lines.lines)


def test_a_proxy_request_id_is_kept_when_plain(logged_in_client, json_lines):
    response = logged_in_client.get("/t/987654/", headers={"x-request-id": "abc-123"})
    assert response["X-Request-ID"] == "abc-123"
    forged = logged_in_client.get("/t/987654/", headers={"x-request-id": 'x"\n{"level":"X"}'})
    assert forged["X-Request-ID"] != 'x"\n{"level":"X"}' and len(forged["X-Request-ID"]) == 32


@pytest.mark.django_db(transaction=True)
async def test_a_turn_logs_its_turn_and_user_but_not_the_message(
    user, make_thread, json_lines, monkeypatch
):
    from asgiref.sync import sync_to_async

    thread = await sync_to_async(make_thread)(user)

    def broken_client(provider):
        raise RuntimeError("the upstream client could not be built")

    monkeypatch.setattr(fallbacks, "client_for", broken_client)
    turn = await launch.start_turn(user, thread.pk, "my secret words")
    await registry.wait_for(turn.pk)
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.FAILED
    (entry,) = [e for e in json_lines.objects() if "failed inside Switchboard" in e["message"]]
    assert entry["turn_id"] == turn.pk
    assert entry["user_id"] == user.pk
    assert entry["level"] == "ERROR" and "RuntimeError" in entry["exception"]
    assert not any("secret words" in line for line in json_lines.lines)


def _django(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django, logging; django.setup(); " + code],
        cwd=ROOT,
        env=os.environ
        | {"DJANGO_SETTINGS_MODULE": "project.settings", "DJANGO_SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_log_format_json_setting_writes_json_lines(tmp_path):
    done = _django(
        "logging.getLogger('chat.x').warning('ended %s', 7)",
        LOG_FORMAT="json",
        SWITCHBOARD_DATA_DIR=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.strip().splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "chat.x", "ended 7")


def test_an_unknown_log_format_is_refused(tmp_path):
    done = _django("", LOG_FORMAT="xml", SWITCHBOARD_DATA_DIR=str(tmp_path))
    assert done.returncode != 0
    assert "LOG_FORMAT must be text or json, not 'xml'" in done.stderr

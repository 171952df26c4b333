"""``manage.py backup`` / ``restore``: a backup taken while an answer streams restores into a
fresh install that starts and serves every finished turn intact."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from chat.models import Turn
from chat.services import backup
from chat.services.turns import launch, registry
from devtools.launch import daphne_command, free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


def _env(data_dir: Path, port: int = 8000) -> dict[str, str]:
    """A fresh install on ``data_dir`` with this installation's keys (README "Backups": the
    keys go with the backup, kept apart from it; API keys are encrypted with them)."""
    from django.conf import settings

    return os.environ | {
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "SWITCHBOARD_ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "DJANGO_SECURE": "0",
        "PORT": str(port),
        "DEMO_GATEWAY_ENABLED": "0",
    }


def _manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _login(url: str, username: str, password: str) -> httpx.Client:
    browser = httpx.Client(base_url=url, timeout=10)
    browser.get("/accounts/login/")
    response = browser.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
    )
    assert response.status_code == 302, response.text[:500]
    return browser


async def _run(user, thread_id: int, text: str) -> Turn:
    turn = await launch.start_turn(user, thread_id, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def test_backup_while_streaming_restores_into_a_fresh_app_with_finished_turns(
    user, make_thread, tmp_path
):
    thread = await sync_to_async(make_thread)(user)
    finished = [await _run(user, thread.pk, text) for text in ("first question", "second one")]
    assert all(turn.status == Turn.Status.COMPLETED for turn in finished)
    streaming = await launch.start_turn(user, thread.pk, "long one #chunks=300 #delay=10")
    for _ in range(200):
        snapshot = registry.running_snapshot(streaming.pk)
        if snapshot and snapshot["blocks"] + [snapshot["tail"]] != [""]:
            break
        await asyncio.sleep(0.02)
    target = tmp_path / "backup.sqlite3"
    out = io.StringIO()
    await sync_to_async(call_command)("backup", str(target), stdout=out)
    assert registry.running_snapshot(streaming.pk) is not None, "the backup waited for it"
    await registry.wait_for(streaming.pk)
    assert (await Turn.objects.aget(pk=streaming.pk)).status == Turn.Status.COMPLETED
    assert out.getvalue().startswith(f"Backed up to {target}")
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(target) as copy:
        statuses = dict(copy.execute("SELECT id, status FROM chat_turn").fetchall())
    assert statuses[streaming.pk] == "in_progress"  # as of its last checkpoint

    page, exported = await asyncio.to_thread(_restore_and_read, target, tmp_path, thread.pk)
    for turn in finished:
        assert turn.user_text in page
    by_question = {t["user"]: t for t in exported["turns"]}
    for turn in finished:
        stored = by_question[turn.user_text]
        assert (stored["answer"], stored["status"]) == (turn.output_text, "completed")
        assert stored["usage"]["total_tokens"] == turn.total_tokens


def _restore_and_read(target: Path, tmp_path: Path, thread_id: int) -> tuple[str, dict]:
    """Restore ``target`` into a fresh install, start it, and read the thread as its owner:
    the page and its JSON export."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restored = _manage(fresh, "restore", str(target), "--noinput")
    assert restored.returncode == 0, restored.stderr
    assert "before-restore" in restored.stdout
    migrated = _manage(fresh, "migrate", "--noinput", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log = tmp_path / "daphne.log"
    server = subprocess.Popen(
        daphne_command(port),
        cwd=ROOT,
        env=_env(fresh, port),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        browser = _login(url, "alice", "correct horse 42")
        page = browser.get(f"/t/{thread_id}/")
        assert page.status_code == 200, log.read_text()[-3000:]
        return page.text, browser.get(f"/t/{thread_id}/export.json").json()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_backup_refuses_to_overwrite_and_restore_refuses_a_foreign_file(tmp_path, db):
    target = tmp_path / "b.sqlite3"
    call_command("backup", str(target), stdout=io.StringIO())
    with pytest.raises(CommandError, match="exists; choose another name or pass --overwrite"):
        call_command("backup", str(target), stdout=io.StringIO())
    call_command("backup", str(target), "--overwrite", stdout=io.StringIO())

    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CommandError, match="not a readable SQLite database"):
        call_command("restore", str(junk), "--noinput")
    empty = tmp_path / "other.sqlite3"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(CommandError, match="not a Switchboard database"):
        call_command("restore", str(empty), "--noinput")


def test_restore_refuses_while_answers_are_being_generated(tmp_path, user, make_thread):
    from django.utils import timezone

    thread = make_thread(user)
    Turn.objects.create(
        thread=thread,
        author=user,
        user_text="hi",
        status=Turn.Status.IN_PROGRESS,
        heartbeat_at=timezone.now(),
    )
    target = tmp_path / "b.sqlite3"
    call_command("backup", str(target), stdout=io.StringIO())
    with pytest.raises(CommandError, match="stop every worker before restoring"):
        call_command("restore", str(target), "--noinput")


def test_postgresql_gets_the_pg_dump_command(monkeypatch):
    monkeypatch.setattr(backup, "_database", lambda: {"ENGINE": "django.db.backends.postgresql"})
    with pytest.raises(CommandError) as refused:
        call_command("backup", "/tmp/x.dump")
    message = str(refused.value)
    assert 'pg_dump --format=custom --no-owner --no-privileges --file=PATH "$DATABASE_URL"' in (
        message
    )
    assert "pg_restore --clean --if-exists" in message

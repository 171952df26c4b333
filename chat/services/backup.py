"""Backups of the database (``manage.py backup`` / ``manage.py restore``; README "Backups").

SQLite: SQLite's online backup API copies a consistent snapshot while the workers keep serving
(a turn streaming meanwhile is in the copy as of its last checkpoint; every finished turn is
whole). PostgreSQL: ``pg_dump`` does the same job better; these commands print its exact
command line instead of doing half of it.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

PG_DUMP = 'pg_dump --format=custom --no-owner --no-privileges --file={path} "$DATABASE_URL"'
PG_RESTORE = (
    'pg_restore --clean --if-exists --no-owner --no-privileges --dbname="$DATABASE_URL" {path}'
)
# A backup page step: small enough that writers are not held up for long between steps.
_PAGES_PER_STEP = 1024


class BackupError(Exception):
    """Why a backup or restore was refused; the message says what to do instead."""


def _database() -> dict:
    return connections["default"].settings_dict


def _sqlite_path() -> Path:
    database = _database()
    if database["ENGINE"] != "django.db.backends.sqlite3":
        raise BackupError(
            "This database is PostgreSQL: back it up with\n  "
            + PG_DUMP.format(path="PATH")
            + "\nand restore it (workers stopped) with\n  "
            + PG_RESTORE.format(path="PATH")
        )
    return Path(database["NAME"])


def _check(path: Path) -> None:
    """The file is a whole SQLite database of this app (not a truncated or foreign file)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (result,) = db.execute("PRAGMA integrity_check").fetchone()
        has_app = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='django_migrations'"
        ).fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a readable SQLite database ({error}).") from None
    finally:
        db.close()
    if result != "ok":
        raise BackupError(f"{path} is damaged: {result}.")
    if not has_app:
        raise BackupError(f"{path} is not a Switchboard database (no django_migrations table).")


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` with the online backup API (readers and writers of the
    source carry on), through a temporary file so ``target`` is never half-written."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst, pages=_PAGES_PER_STEP)
        # One file (no -wal beside it): whatever copies the backup gets all of it.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    os.chmod(partial, 0o600)  # it holds everything the database does (chats, key ciphertexts)
    os.replace(partial, target)


def backup(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a consistent copy of the SQLite database to ``path``; returns it."""
    source = _sqlite_path()
    target = Path(path).expanduser().resolve()
    if target == source.resolve():
        raise BackupError("The backup cannot be the database file itself.")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; choose another name or pass --overwrite.")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory.")
    _copy(source, target)
    _check(target)
    return target


def running_turns_recently_alive() -> int:
    """Turns that a worker streamed within the stale period: a sign the app is serving."""
    from chat.models import Turn

    recent = timezone.now() - dt.timedelta(seconds=settings.TURN_STALE_SECONDS)
    try:
        return Turn.objects.filter(status=Turn.Status.IN_PROGRESS, heartbeat_at__gte=recent).count()
    except DatabaseError:  # a new, empty database (restoring onto a fresh install)
        return 0


def restore(path: str | Path) -> Path:
    """Replace the SQLite database by the backup at ``path``, after keeping the current one
    beside it (``<db>.before-restore-<time>``); returns that copy's path. Stop the workers
    first: a running worker keeps its own idea of the data (and may write over the restore)."""
    target = _sqlite_path()
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise BackupError(f"{source} does not exist.")
    _check(source)
    if running_turns_recently_alive():
        raise BackupError(
            "Answers are being generated right now: stop every worker before restoring."
        )
    connections["default"].close()
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    kept = target.with_name(f"{target.name}.before-restore-{stamp}")
    _copy(target, kept)  # sqlite3 creates an empty file if there was none
    restored = sqlite3.connect(source)
    live = sqlite3.connect(target, timeout=30)
    try:
        restored.backup(live)  # page by page into the live file: its WAL and locks stay right
    finally:
        live.close()
        restored.close()
    return kept

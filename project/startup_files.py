"""The files a starting Switchboard process creates, so that importing the settings writes nothing.

Two steps around Django's settings:

1. ``prepare_data_dir()``, *before* the settings are read: the data directory (0700) and, unless
   ``DJANGO_SECRET_KEY``/``DJANGO_SECRET_KEY_FILE`` is set, the random secret key in
   ``data/secret_key`` (0600). It is written once, atomically (``write_once``): every later start,
   and every other process started meanwhile, reads the same key.
2. ``prepare_settings_files(settings)``, *after* them and before anything opens the database: an
   empty SQLite file with mode 0600 (SQLite gives its -wal and -shm files the same mode) and
   ``STATIC_ROOT`` (whitenoise warns at every start without it).

Every entry point runs both: ``manage.py``, ``project/asgi.py`` (Daphne, any ASGI server), the
bench scripts (``setup_django()``), and pytest (``tests/startup_plugin.py``). The settings module
only reads the key (``read_secret_key``) and says how to get one when it is missing.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from project import private_files
from project.env import env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``SWITCHBOARD_DATA_DIR``, or ``data/`` next to ``manage.py``."""
    return Path(env_str("SWITCHBOARD_DATA_DIR") or BASE_DIR / "data")


def secret_key_file(directory: Path) -> Path:
    return directory / "secret_key"


def read_secret_key(directory: Path) -> str:
    """The key a start-up step kept in ``directory``; a clear error when none was made yet."""
    path = secret_key_file(directory)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"No secret key: DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is unset and {path} "
            "does not exist. Start Switchboard through manage.py or project.asgi (they create "
            "it), or set DJANGO_SECRET_KEY."
        ) from None


def prepare_data_dir() -> None:
    """Step 1: the data directory and the kept secret key (unless one is configured)."""
    directory = data_dir()
    private_files.make_private_dir(directory)
    path = secret_key_file(directory)
    if not env_secret("DJANGO_SECRET_KEY") and not path.exists():
        private_files.write_once(path, secrets.token_urlsafe(50))


def prepare_settings_files(settings: Any) -> None:
    """Step 2: the private SQLite file and ``STATIC_ROOT``, as the loaded settings name them."""
    database = settings.DATABASES["default"]
    sqlite = private_files.sqlite_file(database["NAME"])
    if database["ENGINE"] == "django.db.backends.sqlite3" and sqlite:
        private_files.create_private_file(sqlite)
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


def prepare() -> None:
    """Both steps, for an entry point that lets Django set itself up afterwards."""
    prepare_data_dir()
    from django.conf import settings

    prepare_settings_files(settings)


def setup_django() -> None:
    """Both steps around ``django.setup()``, for scripts that use the ORM directly."""
    import django

    prepare()
    django.setup()

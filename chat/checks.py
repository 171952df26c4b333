"""System checks (``manage.py check``; ``--deploy`` for production): files others could read,
and a first-run setup page that anyone could claim."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from project import private_files


def private_paths() -> tuple[list[Path], list[Path]]:
    """The directories (0700) and files (0600) only Switchboard's user may read."""
    directories = [Path(settings.DATA_DIR), Path(settings.MEDIA_ROOT)]
    files = [Path(settings.DATA_DIR) / "secret_key"]
    database = settings.DATABASES["default"]
    sqlite = private_files.sqlite_file(database["NAME"])
    if database["ENGINE"] == "django.db.backends.sqlite3" and sqlite:
        files += [sqlite.with_name(sqlite.name + suffix) for suffix in ("", "-wal", "-shm")]
    return directories, files


def loose_file_modes() -> list[str]:
    """One sentence (with the ``chmod`` that fixes it) per private path others may read."""
    return private_files.loose_modes(*private_paths())


@register(Tags.security)
def check_private_files(app_configs=None, **kwargs) -> list[Warning]:
    return [
        Warning(
            problem,
            hint="It holds sessions, password hashes or the secret key.",
            id="chat.W001",
        )
        for problem in loose_file_modes()
    ]


def accounts_exist() -> bool:
    """False on an empty install, also before ``migrate`` or when the database is unreachable
    (the check cannot prove the install is claimed)."""
    try:
        return get_user_model().objects.exists()
    except DatabaseError:
        return False


@register(Tags.security, deploy=True)
def check_first_run_setup(app_configs=None, **kwargs) -> list[Warning]:
    if not settings.FIRST_RUN_SETUP or accounts_exist():
        return []
    return [
        Warning(
            "No account exists and the first-run page /setup/ is open: whoever reaches it "
            "first becomes the administrator.",
            hint="Create the administrator with `manage.py createsuperuser` and set "
            "FIRST_RUN_SETUP=0, or claim /setup/ before the site is reachable by others.",
            id="chat.W002",
        )
    ]

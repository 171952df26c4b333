"""The static files' manifest (hashed names) the pages need: ``STORAGES["staticfiles"]`` is
whitenoise's CompressedManifestStaticFilesStorage, so ``{% static %}`` refuses a file that
``collectstatic`` has not listed. The test session collects once, and only when a source file
is newer than the manifest (collecting, with gzip and brotli, takes about ten seconds)."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command

MANIFEST = "staticfiles.json"


def newest_source_mtime() -> float:
    newest = 0.0
    for finder in finders.get_finders():
        for path, storage in finder.list([]):
            newest = max(newest, Path(storage.path(path)).stat().st_mtime)
    return newest


def collect_static_if_stale() -> bool:
    """Run ``collectstatic`` unless STATIC_ROOT's manifest is newer than every source file;
    True when it ran. One process at a time (``make test`` runs several)."""
    root = Path(settings.STATIC_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    lock_file = Path(tempfile.gettempdir()) / f"switchboard-collectstatic-{digest}.lock"
    with lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        manifest = root / MANIFEST
        if manifest.exists() and manifest.stat().st_mtime >= newest_source_mtime():
            return False
        call_command("collectstatic", interactive=False, verbosity=0)
        return True

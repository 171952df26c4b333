"""The static files' manifest (hashed names) the pages need: ``STORAGES["staticfiles"]`` is
whitenoise's CompressedManifestStaticFilesStorage, so ``{% static %}`` refuses a file that
``collectstatic`` has not listed. The test session collects once, and only when a source file
is newer than the manifest (collecting, with gzip and brotli, takes about ten seconds)."""

from __future__ import annotations

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
    True when it ran."""
    manifest = Path(settings.STATIC_ROOT) / MANIFEST
    if manifest.exists() and manifest.stat().st_mtime >= newest_source_mtime():
        return False
    call_command("collectstatic", interactive=False, verbosity=0)
    return True

"""Static files as served: the app's own scripts (``static/js``) minified with rjsmin before
they are hashed and compressed, so the chat page's JavaScript stays small with no front-end
build step (vendored libraries are already minified and keep their licence comments)."""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile
from rjsmin import jsmin
from whitenoise.storage import CompressedManifestStaticFilesStorage


def minified(name: str, content: Any) -> Any:
    """``content`` minified when ``name`` is one of the app's scripts, else unchanged."""
    if not (name.startswith("js/") and name.endswith(".js")):
        return content
    content.seek(0)  # the manifest step hands over a file it has just read to hash it
    return ContentFile(jsmin(content.read().decode("utf-8")).encode("utf-8"))


class MinifiedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed names and gzip + brotli copies (whitenoise) of minified scripts."""

    def _save(self, name: str, content: Any) -> str:
        return super()._save(name, minified(name, content))

"""What an uploaded file is, decided from its bytes alone (never the browser's type or the
name's extension alone): a raster image Pillow reads (PNG, JPEG, WebP, GIF), a PDF, or UTF-8
text with a text extension. Everything else (SVG, HTML, executables renamed…) is refused."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from django.utils.translation import gettext as _

from chat.services.attachments.errors import UploadRefused

# Texts by extension: what the type is called when served and sent upstream. HTML, SVG and XML
# are deliberately absent (a browser would run them).
TEXT_TYPES = {
    "txt": "text/plain",
    "text": "text/plain",
    "log": "text/plain",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "jsonl": "application/json",
    "yaml": "text/plain",
    "yml": "text/plain",
    "toml": "text/plain",
    "ini": "text/plain",
    "cfg": "text/plain",
    "sql": "text/plain",
}
SOURCE_EXTENSIONS = frozenset(
    {
        *("py", "pyi", "rb", "go", "rs", "java", "kt", "kts", "scala", "c", "h", "cc", "cpp"),
        *("hpp", "cs", "m", "swift", "php", "pl", "lua", "r", "jl", "sh", "bash", "zsh", "ps1"),
        *("bat", "js", "mjs", "cjs", "ts", "tsx", "jsx", "css", "scss", "less", "vue", "dart"),
        *("ex", "exs", "erl", "hs", "ml", "fs", "clj", "tf", "proto", "gradle", "diff", "patch"),
        *("dockerfile", "makefile"),
    }
)
PDF_MAGIC = b"%PDF-"
MAX_NAME_CHARS = 120
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Sniffed:
    kind: str  # Attachment.Kind: image or document
    content_type: str


def clean_name(raw: str) -> str:
    """A file name safe to show and to put in a header: no directories (``../``, ``C:\\``), no
    control or format characters, at most ``MAX_NAME_CHARS`` (the extension kept)."""
    name = unicodedata.normalize("NFC", raw or "")
    name = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    name = _CONTROL.sub("", name).strip().strip(".") or "file"
    if len(name) > MAX_NAME_CHARS:
        _stem, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 10 else ""
        name = name[: MAX_NAME_CHARS - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name


def extension_of(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return suffix or name.lower()  # "Makefile", "Dockerfile"


def text_type(name: str, data: bytes) -> str | None:
    """The type of a text file: its extension says which, its bytes must be UTF-8 text."""
    extension = extension_of(name)
    if extension in TEXT_TYPES:
        content_type = TEXT_TYPES[extension]
    elif extension in SOURCE_EXTENSIONS:
        content_type = "text/plain"
    else:
        return None
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return content_type


def sniff_document(name: str, data: bytes) -> Sniffed:
    """A PDF or a text file, else UploadRefused. (Images are tried first, by ``images``.)"""
    if data.startswith(PDF_MAGIC):
        return Sniffed("document", "application/pdf")
    content_type = text_type(name, data)
    if content_type is None:
        raise UploadRefused(
            _(
                "“%(name)s” is not a type that can be attached. Images (PNG, JPEG, WebP, GIF), "
                "PDF and text files (plain text, Markdown, CSV, JSON, source code) can."
            )
            % {"name": name}
        )
    return Sniffed("document", content_type)


def document_text(content_type: str, data: bytes) -> str | None:
    """A text document's text (for the APIs that take documents as text); None for a PDF."""
    if content_type == "application/pdf":
        return None
    return data.decode("utf-8-sig", errors="replace")

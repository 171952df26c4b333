"""Images and files in a request: decoded from their base64 ``data:`` URLs, and described in a
line anyone can check: "image: png 640\u00d7480 sha256:1a2b3c4d" (format, width times height, the
first 8 hex of the SHA-256), "file: notes.txt 120 bytes, first line: …". Image sizes are read from
the format headers, so the demo needs no imaging library."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from typing import Any

from demo_gateway.errors import HTTPError, error_body, invalid_request, missing_parameter

IMAGE_TOKENS = 85  # counted per image in the conversation, like a low-detail image upstream
_FIRST_LINE_CHARS = 80
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64,(.*)", re.DOTALL)

Attachment = dict[str, Any]  # {"kind": "image" | "file", "description": str, "param": str}


def _decode_base64(text: str, param: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(
            f"Invalid base64 data in '{param}'.", param, "invalid_base64"
        ) from None


def data_url_bytes(url: Any, param: str) -> bytes:
    """The bytes of a base64 ``data:`` URL. Other URLs are refused: the demo never fetches."""
    if not isinstance(url, str) or not url:
        raise missing_parameter(param)
    match = _DATA_URL.fullmatch(url.strip())
    if match is None:
        if url.startswith(("http://", "https://")):
            message = (
                f"The demo gateway does not fetch URLs ('{param}'); send the content inline "
                "as a base64 data: URL."
            )
            raise invalid_request(message, param, "url_not_supported")
        raise invalid_request(
            f"Invalid value for '{param}': expected a base64 data: URL.", param, "invalid_value"
        )
    return _decode_base64(match.group(3), param)


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) of a PNG, JPEG, WebP or GIF image, from its header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "gif", width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return "webp", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return "webp", width, height
    return None


_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return "jpeg", width, height
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        position += 2 + length
    return None


def sha8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def describe_image(data: bytes, param: str) -> Attachment:
    size = image_size(data)
    if size is None:
        raise HTTPError(
            400,
            error_body(
                "You uploaded an unsupported image. Send a PNG, JPEG, WebP or GIF image.",
                "invalid_request_error",
                "invalid_image_format",
                param,
            ),
        )
    kind, width, height = size
    description = f"image: {kind} {width}×{height} sha256:{sha8(data)}"  # noqa: RUF001
    return {"kind": "image", "description": description, "param": param}


def describe_file(name: str, data: bytes, param: str) -> Attachment:
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    first = first[:_FIRST_LINE_CHARS] or "(empty)"
    description = f"file: {name} {len(data)} bytes, first line: {first}"
    return {"kind": "file", "description": description, "param": param}


def image_part(url: Any, param: str) -> Attachment:
    return describe_image(data_url_bytes(url, param), param)


def file_part(part: dict[str, Any], param: str) -> Attachment:
    """A Responses ``input_file`` or a Chat ``file`` part: ``filename`` + ``file_data``."""
    name = part.get("filename")
    if not isinstance(name, str) or not name:
        raise missing_parameter(f"{param}.filename")
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        if part.get("file_id") or part.get("file_url"):
            raise invalid_request(
                f"The demo gateway keeps no files ('{param}'): send 'file_data' inline.",
                param,
                "unsupported_value",
            )
        raise missing_parameter(f"{param}.file_data")
    if data.startswith("data:"):
        raw = data_url_bytes(data, f"{param}.file_data")
    else:
        raw = _decode_base64(data, f"{param}.file_data")
    return describe_file(name, raw, param)

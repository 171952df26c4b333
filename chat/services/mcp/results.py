"""An MCP tool result as the model receives it, per API. Pure functions (no Django); the
images go to the Responses API as input parts (``chat.upstream.responses_api``)."""

from __future__ import annotations

import base64
import binascii
import json

from mcp.types import CallToolResult

# Images travel inside the turn's stored record and every later request: keep them small.
MAX_IMAGE_BYTES = 1_000_000
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return (
        text[:limit]
        + f"\n[Truncated: the tool returned {len(text)} characters; only the first {limit} "
        "are shown.]"
    )


def shape(result: CallToolResult, api: str, max_chars: int) -> tuple[str, list[dict[str, str]]]:
    """The result as the model gets it: the text blocks (or else the structured content as
    JSON), notes for what cannot be passed on, and the images the API can take as input."""
    texts: list[str] = []
    notes: list[str] = []
    images: list[dict[str, str]] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)
        elif kind == "image":
            notes.append(_image(block.mime_type, block.data, api, images))
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if text is not None:
                texts.append(text)
            else:
                notes.append(f"[A binary resource ({resource.uri}) was left out.]")
        elif kind == "resource_link":
            notes.append(f"[Resource link: {block.uri}]")
        else:
            notes.append(f"[A {kind or 'content'} block was left out: it cannot be passed on.]")
    if not texts and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = truncate("\n".join(texts), max_chars)
    return "\n".join([text, *notes]).strip() or "(The tool returned nothing.)", images


def _image(mime: str, data: str, api: str, images: list[dict[str, str]]) -> str:
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return "[The tool returned an image that is not valid base64; it was left out.]"
    if api != "responses":
        return (
            f"[The tool returned an image ({mime}, {size} bytes); this API cannot pass images "
            "from tools to the model.]"
        )
    if mime not in IMAGE_TYPES:
        return f"[The tool returned an image of type {mime}, which models do not take.]"
    if size + sum(len(i["data"]) * 3 // 4 for i in images) > MAX_IMAGE_BYTES:
        return f"[The tool returned an image of {size} bytes: too large, left out.]"
    images.append({"mime": mime, "data": data})
    return f"[Image {len(images)} ({mime}) is attached.]"

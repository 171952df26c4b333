"""JSON from the gateway: parsed with orjson (one SSE event is one parse, so this is on the
relay's per-chunk path), with the standard library as the fallback for what orjson refuses
but ``json`` accepts (lone surrogate escapes, ``NaN``), so no gateway's stream breaks that
parsed before. Raises ``ValueError`` (or ``RecursionError``) like ``json.loads``."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads"]


def loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)

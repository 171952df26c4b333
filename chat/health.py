"""``/healthz``: is this worker able to serve? The database answers a trivial query and the
channel layer carries a message to a fresh channel and back (with Redis, that is a round trip
through the server every worker shares). No login; the answer names the failing part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)

DATABASE_TIMEOUT = 5.0
CHANNEL_LAYER_TIMEOUT = 2.0


def _query_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 returned something else")


async def check_database() -> None:
    """Raises unless the default database answers ``SELECT 1`` within ``DATABASE_TIMEOUT``.

    Runs outside the request's thread-sensitive executor, so a hung connection attempt cannot
    hold up the response after the timeout."""
    query = database_sync_to_async(_query_database, thread_sensitive=False)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await query()
    except TimeoutError:
        raise TimeoutError(f"no answer within {DATABASE_TIMEOUT:g} s") from None


async def check_channel_layer() -> None:
    """Raises unless a message sent to a fresh channel comes back within the timeout."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    nonce = uuid.uuid4().hex
    try:
        async with asyncio.timeout(CHANNEL_LAYER_TIMEOUT):
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "health.check", "nonce": nonce})
            message = await layer.receive(channel)
    except TimeoutError:
        raise TimeoutError(f"no message back within {CHANNEL_LAYER_TIMEOUT:g} s") from None
    if message.get("nonce") != nonce:
        raise RuntimeError("a different message came back")


CHECKS = {"database": check_database, "channel_layer": check_channel_layer}


def _secrets() -> list[str]:
    """Passwords in the configured URLs: never part of an error shown to anyone."""
    values = [str(settings.DATABASES["default"].get("PASSWORD") or "")]
    for url in (getattr(settings, "REDIS_URL", ""), getattr(settings, "DATABASE_URL", "")):
        with contextlib.suppress(ValueError):
            values.append(urlsplit(url).password or "")
    return [value for value in values if value]


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text[:300]


async def run_checks() -> dict:
    """``{"status": "ok"|"error", "<part>": "ok"|"error", …}`` plus ``errors`` naming each
    failing part with a short description."""
    outcomes = await asyncio.gather(*(check() for check in CHECKS.values()), return_exceptions=True)
    report: dict = {"status": "ok"}
    errors = {}
    for name, outcome in zip(CHECKS, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome  # cancellation and the like are not health results
            log.warning("health check %s failed: %s", name, describe(outcome))
            errors[name] = describe(outcome)
        report[name] = "error" if name in errors else "ok"
    if errors:
        report["status"] = "error"
        report["errors"] = errors
    return report


@login_not_required
@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    report = await run_checks()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)

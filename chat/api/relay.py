"""One API call: upstream request (with the model's fallbacks), the answer relayed to the client
as it arrives, and the call's usage record and audit entry.

Streams are relayed as the upstream's own bytes, cut only at line ends (an SSE client can do
nothing with half a line), so the client sees exactly the gateway's events. Per chunk the relay
does a few byte scans: ``"usage"`` (parsed then, once per stream), ``"delta"`` (counted, for
the estimate of an abandoned stream) and the end markers. Nothing is translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse

from chat.api import auth
from chat.api.auth import Caller
from chat.api.errors import ApiError
from chat.api.routing import Route
from chat.models import AuditLogEntry, ModelSetting, UsageRecord
from chat.services import budgets, fallbacks, parameters, providers
from chat.services.usage import cost_of
from chat.upstream.client import http_failure
from chat.upstream.encoding import encode
from chat.upstream.events import Usage
from chat.upstream.request import Api, Request

PATHS = {Api.RESPONSES: "responses", Api.CHAT: "chat/completions"}
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 16 * 1024 * 1024
CHARS_PER_TOKEN = 4

_recording: set[asyncio.Task] = set()  # strong references: records finish even if we are cancelled


@dataclass
class Call:
    """One call's bookkeeping, from its start record to its end."""

    caller: Caller
    api: str
    record_id: int
    chain: list[Route]
    request_chars: int
    model: str = ""
    provider_id: int | None = None
    provider_name: str = ""
    status: str = "in_progress"
    usage: Usage | None = None
    deltas: int = 0
    http_status: int = 200
    team_id: int | None = None  # the billing team the record was created with
    created_at: Any = None
    started: float = field(default_factory=time.monotonic)


# -- start and end records ----------------------------------------------------------------------


def start_call(caller: Caller, api: str, route: Route, request_chars: int) -> tuple[Call, dict]:
    """Sync, one transaction: the checks (``routing.check_call``) and the call's usage record,
    created now so the rate limit counts calls still streaming. Returns (call, model defaults,
    chain of model ids)."""
    from chat.api.routing import check_call

    with transaction.atomic():
        defaults = check_call(caller, route)
        record = UsageRecord.objects.create(
            user_id=caller.user_id,
            provider_id=route.provider.pk,
            provider_name=route.provider.name,
            model=route.model,
            api=api,
            status="in_progress",
            source="api",
            api_key_id=caller.key_id,
        )
    call = Call(
        caller,
        api,
        record.pk,
        [route],
        request_chars,
        route.model,
        route.provider.pk,
        route.provider.name,
    )
    call.team_id, call.created_at = record.team_id, record.created_at
    return call, defaults


def _finish(call: Call) -> None:
    usage = call.usage
    estimated = False
    if usage is None or not usage.total_tokens:
        estimated = call.deltas > 0
        usage = Usage(
            input_tokens=math.ceil(call.request_chars / CHARS_PER_TOKEN) if estimated else 0,
            output_tokens=call.deltas,  # gateways send about one token per delta
        )
        usage = Usage(
            usage.input_tokens, usage.output_tokens, usage.input_tokens + usage.output_tokens
        )
    setting = ModelSetting.objects.filter(provider_id=call.provider_id, model=call.model).first()
    total = usage.total_tokens or usage.input_tokens + usage.output_tokens
    cost = cost_of(setting, usage.input_tokens, usage.cached_tokens, usage.output_tokens)
    with transaction.atomic():
        UsageRecord.objects.filter(pk=call.record_id).update(
            model=call.model,
            provider_id=call.provider_id,
            provider_name=call.provider_name,
            status=call.status,
            input_tokens=usage.input_tokens,
            cached_tokens=usage.cached_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            image_tokens=usage.image_tokens,
            audio_tokens=usage.audio_tokens,
            total_tokens=total,
            cost=cost,
            estimated=estimated,
        )
        audit_call(call.caller, call.model, f"{call.status} ({call.http_status})")
        # The record was created with no tokens (at the call's start): now its team's month
        # gets what the call used, as a turn's record does when it is created.
        if call.team_id is not None and total:
            budgets.after_usage(
                UsageRecord(
                    pk=call.record_id,
                    team_id=call.team_id,
                    created_at=call.created_at,
                    total_tokens=total,
                    cost=cost,
                )
            )


def audit_call(caller: Caller, model: str, status: str) -> None:
    """Key id, model and outcome; never a request or answer body."""
    AuditLogEntry.objects.create(
        actor_id=caller.user_id,
        actor_name=caller.username,
        action="api call",
        object_type="API key",
        object_id=str(caller.key_id),
        object_repr=f"API key {caller.key_id}",
        field=model[:100],
        new_value=status,
    )


async def finish(call: Call) -> None:
    """Store the call's end; survives the caller's cancellation (a client that hung up)."""
    task = asyncio.ensure_future(sync_to_async(_finish, thread_sensitive=False)(call))
    _recording.add(task)
    task.add_done_callback(_recording.discard)
    await asyncio.shield(task)


# -- the upstream request, with fallbacks --------------------------------------------------------


async def fallback_chain(caller: Caller, first: Route) -> list[Route]:
    """``first``, then the fallbacks staff set for it that this caller may use."""
    from chat.api.routing import may_use_model

    chain = (await fallbacks.chain_for(first.provider.pk, first.model))[1:]

    def allowed() -> list[str]:
        return [m for m in chain if may_use_model(caller, first.provider.pk, m)]

    models = await sync_to_async(allowed)() if chain else []
    return [first, *(Route(first.provider, model) for model in models)]


def upstream_body(body: dict[str, Any], api: str, defaults: dict) -> tuple[dict[str, Any], bool]:
    """The body sent upstream: the client's, with the model's staff defaults for what it left
    unset. Chat streams always ask for usage; returns True when the client did not, so the relay
    drops that extra chunk."""
    sent = dict(body)
    if defaults:
        # The defaults encoded as the chat encodes them (same wire names). Not the messages:
        # in Chat, instructions would be a system message, and the client's messages win.
        probe = Request(
            Api(api), body["model"], [], parameters=parameters.request_parameters(defaults, api)
        )
        wire = encode(probe)
        for name in ("model", "messages", "input", "stream", "stream_options"):
            wire.pop(name, None)
        for name, value in wire.items():
            sent.setdefault(name, value)
    strip_usage = False
    if api == Api.CHAT and body.get("stream"):
        options = body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            sent["stream_options"] = {**(options or {}), "include_usage": True}
            strip_usage = True
    return sent, strip_usage


def _upstream_error(status: int, raw: bytes, retry_after: str | None) -> ApiError:
    failure = http_failure(status, raw)
    if status == 429:
        seconds = fallbacks.retry_after_seconds(retry_after, 3600) or 1
        return ApiError(
            429,
            failure.message,
            code=failure.code or "rate_limit_exceeded",
            retry_after=math.ceil(seconds),
        )
    if status >= 500:
        return ApiError(
            504 if status == 504 else 502, failure.message, code=failure.code or "upstream_error"
        )
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError, RecursionError):
        error = {}
    param = error.get("param") if isinstance(error, dict) else None
    return ApiError(
        status, failure.message, code=failure.code, param=param if isinstance(param, str) else None
    )


async def _more(call: Call, loaded: bool, position: int) -> bool:
    """Is there a next model after ``position``? The fallback chain is read at the first
    failure only, so calls whose model answers cost no query for it."""
    if not loaded:
        call.chain = await fallback_chain(call.caller, call.chain[0])
    return position + 1 < len(call.chain)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    parts, size = [], 0
    async for chunk in response.aiter_raw():
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


async def open_upstream(
    call: Call, body: dict[str, Any], stack: contextlib.AsyncExitStack
) -> httpx.Response:
    """The first upstream response that is not a retryable failure, along ``call.chain``.
    Sets ``call.model``/``provider`` to the answering entry. Raises :class:`ApiError`."""
    stream = bool(body.get("stream"))
    last_error: ApiError | None = None
    chain_loaded = False
    position = -1
    while position + 1 < len(call.chain):
        position += 1
        route = call.chain[position]
        inner = contextlib.AsyncExitStack()
        try:
            response = await _attempt(call, route, body, stream=stream, inner=inner)
        except _Unreachable as unreachable:
            await inner.aclose()
            last_error = unreachable.error
            if await _more(call, chain_loaded, position):
                chain_loaded = True
                continue
            raise last_error from None
        except ApiError:
            await inner.aclose()
            raise
        if response.status_code >= 400:
            last_error, retry_after = await _failure_of(response)
            await inner.aclose()
            if fallbacks.retryable_status(response.status_code) and await _more(
                call, chain_loaded, position
            ):
                chain_loaded = True
                cap = settings.API_RETRY_AFTER_CAP_SECONDS
                wait = fallbacks.retry_after_seconds(retry_after, cap)
                if wait:
                    await asyncio.sleep(wait)
                continue
            call.http_status = last_error.status
            raise last_error
        await stack.enter_async_context(inner)
        call.model, call.provider_id = route.model, route.provider.pk
        call.provider_name = route.provider.name
        return response
    raise last_error or ApiError(502, "No model could answer.", code="upstream_error")


class _Unreachable(Exception):
    """The entry's gateway could not be reached: the next entry of the chain may try."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


async def _attempt(
    call: Call, route: Any, body: dict[str, Any], *, stream: bool, inner: contextlib.AsyncExitStack
) -> httpx.Response:
    """One entry of the chain: its response (any status), or :class:`_Unreachable`, or an
    :class:`ApiError` that no other entry would change (a timeout, a broken connection)."""
    client = providers.client_for(route.provider)
    attempt = {**body, "model": route.model}
    try:
        return await inner.enter_async_context(
            client.raw_response(PATHS[call.api], attempt, stream=stream)
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        message = f"Could not reach the gateway ({type(exc).__name__})."
        raise _Unreachable(ApiError(502, message, code="upstream_unreachable")) from None
    except httpx.TimeoutException:
        raise ApiError(
            504, "The gateway did not answer in time.", code="upstream_timeout"
        ) from None
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            f"The connection to the gateway failed ({type(exc).__name__}).",
            code="upstream_error",
        ) from None


async def _failure_of(response: httpx.Response) -> tuple[ApiError, str | None]:
    """An upstream error response as the client's error, and its ``Retry-After``."""
    try:
        raw = await _read_capped(response, _ERROR_BODY_LIMIT)
    except httpx.HTTPError:
        raw = b""
    retry_after = response.headers.get("retry-after")
    return _upstream_error(response.status_code, raw, retry_after), retry_after


# -- answers -------------------------------------------------------------------------------------


def _usage_from(line: bytes) -> Usage | None:
    try:
        payload = json.loads(line[5:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    found = payload.get("usage")
    if not isinstance(found, dict) and isinstance(payload.get("response"), dict):
        found = payload["response"].get("usage")
    return Usage.from_payload(found) if isinstance(found, dict) else None


async def whole_answer(call: Call, response: httpx.Response) -> HttpResponse:
    """A non-streamed answer: read it (bounded), record its usage, hand it over."""
    try:
        raw = await _read_capped(response, _JSON_BODY_LIMIT)
    except httpx.TimeoutException:
        call.status, call.http_status = "failed", 504
        raise ApiError(
            504, "The gateway did not finish the answer in time.", code="upstream_timeout"
        ) from None
    except httpx.HTTPError:
        call.status, call.http_status = "failed", 502
        raise ApiError(
            502, "The gateway closed the connection before answering.", code="upstream_error"
        ) from None
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict):
        found = payload.get("usage")
        call.usage = Usage.from_payload(found) if isinstance(found, dict) else None
        call.status = str(payload.get("status") or "completed")[:20]
    else:
        call.status = "failed"
    return HttpResponse(
        raw,
        status=response.status_code,
        content_type=response.headers.get("content-type", "application/json"),
    )


def _error_event(api: str, message: str, code: str) -> bytes:
    error = {"message": message, "type": "api_error", "param": None, "code": code}
    if api == Api.RESPONSES:
        payload = {"type": "error", "code": code, "message": message, "param": None, "error": error}
        return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def _without_usage_chunk(ready: bytes) -> bytes:
    """Drop the usage-only chunk a Chat stream sends when asked for usage (the client did not
    ask, and code written against OpenAI may read ``choices[0]`` of every chunk)."""
    kept, skip_blank = [], False
    for line in ready.split(b"\n"):
        if skip_blank and not line.strip():
            skip_blank = False
            continue
        skip_blank = False
        if (
            line.startswith(b"data:")
            and b'"usage"' in line
            and b'"choices":[]' in line.replace(b" ", b"")
        ):
            skip_blank = True
            continue
        kept.append(line)
    return b"\n".join(kept)


# What ends a stream, and the status it gives the call (first match wins).
_ENDINGS = (
    (b"[DONE]", "completed"),
    (b"response.completed", "completed"),
    (b"response.incomplete", "incomplete"),
    (b"response.failed", "failed"),
)


def _inspect(call: Call, ready: bytes, *, strip_usage: bool) -> tuple[bytes, bool]:
    """Note what a line-complete piece of the stream says (deltas, usage, its end); returns
    it (without the usage chunk the client did not ask for) and whether the stream ended."""
    if b"\r" in ready:
        ready = ready.replace(b"\r\n", b"\n")
    call.deltas += ready.count(b'"delta"')
    if b'"usage"' in ready:
        for line in ready.split(b"\n"):
            if line.startswith(b"data:") and b'"usage"' in line:
                call.usage = _usage_from(line) or call.usage
        if strip_usage:
            ready = _without_usage_chunk(ready)
    for marker, status in _ENDINGS:
        if marker in ready:
            call.status = status
            return ready, True
    return ready, False


async def relay_stream(
    call: Call, response: httpx.Response, stack: contextlib.AsyncExitStack, strip_usage: bool
) -> AsyncIterator[bytes]:
    """The upstream's SSE bytes, line-complete, as they come. Ends (upstream cancelled) when the
    client hangs up or the key stops being valid; the call is recorded in every case."""
    api = call.api
    recheck = settings.API_KEY_RECHECK_SECONDS
    next_check = time.monotonic() + recheck
    tail = b""
    ended = False
    try:
        async for chunk in response.aiter_raw():
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            tail, ready = data[cut:], data[:cut]
            if not ready:
                continue
            ready, finished = _inspect(call, ready, strip_usage=strip_usage)
            ended = ended or finished
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + recheck
                if not await sync_to_async(auth.still_valid)(
                    call.caller.key_id, call.caller.user_id
                ):
                    call.status = "revoked"
                    yield _error_event(
                        api, "This API key was revoked or the API turned off.", "api_key_revoked"
                    )
                    return
            yield ready
        if tail:
            yield tail + b"\n\n"
        if not ended:
            call.status = "failed"
            yield _error_event(
                api, "The gateway closed the stream before the answer finished.", "upstream_cut"
            )
    except httpx.TimeoutException:
        call.status = "failed"
        yield _error_event(api, "The gateway stopped responding.", "upstream_timeout")
    except httpx.HTTPError:
        call.status = "failed"
        yield _error_event(api, "The gateway closed the connection.", "upstream_cut")
    except (asyncio.CancelledError, GeneratorExit):
        call.status = "stopped"  # the client hung up
        raise
    finally:
        await stack.aclose()  # closes the upstream response: the gateway stops generating
        call.http_status = 200
        await finish(call)


def stream_response(
    call: Call, response: httpx.Response, stack: contextlib.AsyncExitStack, strip_usage: bool
) -> StreamingHttpResponse:
    streamed = StreamingHttpResponse(
        relay_stream(call, response, stack, strip_usage),
        content_type=response.headers.get("content-type", "text/event-stream"),
    )
    streamed["Cache-Control"] = "no-cache"
    streamed["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    return streamed

"""``/api/v1``: thin async views. Bearer keys only (no session, no CSRF, not behind the login
redirect); every failure is an OpenAI-shaped error (``chat.api.errors``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import RawPostDataException
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt

from chat.api import relay, routing, validation
from chat.api.auth import Caller, authenticate
from chat.api.errors import ApiError, error_response
from chat.services.login_throttle import client_ip

View = Callable[[HttpRequest], Awaitable[HttpResponse]]

_CORS_HEADERS = "Authorization, Content-Type, OpenAI-Organization, OpenAI-Project"


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin and origin in settings.API_CORS_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
        response["Access-Control-Expose-Headers"] = "Retry-After"
    return response


def api_view(methods: tuple[str, ...]) -> Callable[[View], View]:
    """Method check, CORS (``API_CORS_ORIGINS``), and ApiError → error response."""

    def wrap(view: View) -> View:
        @csrf_exempt
        @login_not_required
        async def handler(request: HttpRequest) -> HttpResponse:
            request.get_host()  # ALLOWED_HOSTS (DisallowedHost: 400), as the site's pages
            if request.method == "OPTIONS":  # a browser's preflight: no key is sent with it
                response = HttpResponse(status=204)
                if request.headers.get("Origin") in settings.API_CORS_ORIGINS:
                    response["Access-Control-Allow-Methods"] = ", ".join((*methods, "OPTIONS"))
                    response["Access-Control-Allow-Headers"] = _CORS_HEADERS
                    response["Access-Control-Max-Age"] = "600"
                return _cors(request, response)
            if request.method not in methods:
                response = error_response(ApiError(405, f"Method {request.method} not allowed."))
                response["Allow"] = ", ".join(methods)
                return _cors(request, response)
            try:
                # The API's error "message" texts stay English whatever the caller's language:
                # API clients parse them (the checks it shares with the chat, quotas and
                # parameters, are translated for the chat's pages).
                with translation.override("en"):
                    response = await view(request)
            except ApiError as error:
                response = error_response(error)
            return _cors(request, response)

        return handler

    return wrap


async def _caller(request: HttpRequest) -> Caller:
    return await sync_to_async(authenticate)(
        request.headers.get("Authorization", ""), client_ip(request)
    )


@api_view(("GET",))
async def models(request: HttpRequest) -> HttpResponse:
    """The models of enabled providers that the key's owner may use."""
    caller = await _caller(request)
    created = int(time.time())
    seen, data = set(), []
    for group, model in await routing.listed(caller):
        if model in seen:
            continue
        seen.add(model)
        data.append(
            {"id": model, "object": "model", "created": created, "owned_by": group.provider_name}
        )
    return JsonResponse({"object": "list", "data": data})


async def _generate(request: HttpRequest, api: str) -> HttpResponse:
    caller = await _caller(request)
    try:
        raw = request.body
    except (RequestDataTooBig, RawPostDataException):
        raise ApiError(413, "The request body is too large.", code="request_too_large") from None
    body = validation.parse_body(raw, api)
    route = await routing.route(caller, body["model"])
    try:
        call, defaults = await sync_to_async(relay.start_call)(caller, api, route, len(raw))
    except ApiError as error:
        await sync_to_async(relay.audit_call)(caller, route.model, f"refused ({error.status})")
        raise
    sent, strip_usage = relay.upstream_body(body, api, defaults)
    stack = contextlib.AsyncExitStack()
    try:
        response = await relay.open_upstream(call, sent, stack)
    except (ApiError, asyncio.CancelledError) as error:
        await stack.aclose()
        call.status = "failed" if isinstance(error, ApiError) else "stopped"
        call.http_status = error.status if isinstance(error, ApiError) else 499
        await relay.finish(call)
        raise
    if sent.get("stream"):
        return relay.stream_response(call, response, stack, strip_usage)
    try:
        return await relay.whole_answer(call, response)
    except ApiError as error:
        call.http_status = error.status
        raise
    finally:
        await stack.aclose()
        await relay.finish(call)


@api_view(("POST",))
async def responses(request: HttpRequest) -> HttpResponse:
    return await _generate(request, validation.RESPONSES)


@api_view(("POST",))
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _generate(request, validation.CHAT)

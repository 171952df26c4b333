"""Which models a caller may use and which provider serves each; the checks before a call.

:func:`may_use_model` (the key's restriction and the owner's per-team model access) decides what
``/models`` lists and what may be called; :func:`check_call` is the single place where a call is
allowed or refused before it goes upstream: ``quotas.check``, the chat's own check (model
switches and access, team budgets, the rate limit counting turns and API calls, quotas).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.utils import timezone

from chat.api.auth import Caller
from chat.api.errors import ApiError
from chat.models import Provider
from chat.services import model_access, providers, quotas
from chat.services.providers import ProviderModels
from chat.services.refusals import TurnRejected

_WAIT = re.compile(r"Try again in (\d+) seconds")


@dataclass(frozen=True)
class Route:
    provider: Provider
    model: str


def _owner(caller: Caller):
    from django.contrib.auth import get_user_model

    return get_user_model()(pk=caller.user_id, is_staff=caller.is_staff)


def may_use_model(caller: Caller, provider_id: int, model: str) -> bool:
    """The key's own restriction and the owner's model access (per team, ``model_access``)."""
    return caller.may_use(model) and model_access.may_use_model(_owner(caller), provider_id, model)


def _listed(caller: Caller, groups: list[ProviderModels]) -> list[tuple[ProviderModels, str]]:
    groups = model_access.filter_models(_owner(caller), groups)
    return [(g, m) for g in groups for m in g.models if caller.may_use(m)]


async def listed(caller: Caller) -> list[tuple[ProviderModels, str]]:
    """(provider models, model id) the caller may use, in the providers' order."""
    return await sync_to_async(_listed)(caller, await providers.all_models())


async def route(caller: Caller, model: str) -> Route:
    """The enabled provider serving ``model`` (the default provider first). 404 when no provider
    offers it (or staff turned it off), 403 when this caller may not use it."""
    groups = await providers.all_models()
    offering = [g for g in groups if model in g.models]
    if not offering:
        raise ApiError(
            404,
            f"The model '{model}' does not exist or is not available here.",
            param="model",
            code="model_not_found",
        )
    group = offering[0]
    if not caller.may_use(model):
        raise ApiError(
            403,
            f"Your API key may not use the model '{model}'.",
            param="model",
            code="model_not_allowed",
        )
    provider = await Provider.objects.aget(pk=group.provider_id)
    return Route(provider, model)


def check_call(caller: Caller, route: Route) -> dict:
    """Sync (inside the transaction that records the call's start). Raises :class:`ApiError`:
    403 for a model staff turned off, 429 with Retry-After for rate limit and quotas.
    Returns the model's default parameters."""
    user = _owner(caller)
    try:
        return quotas.check(user, route.provider, route.model)
    except TurnRejected as exc:
        message = str(exc)
        if "turned off" in message or message == model_access.refusal(route.model):
            raise ApiError(403, message, param="model", code="model_not_allowed") from None
        wait = _WAIT.search(message)
        if wait:
            retry = int(wait.group(1))
        else:  # a quota: until it resets (the day's, or the month's)
            tomorrow, next_month = quotas.next_resets()
            reset = tomorrow if "daily" in message else next_month
            retry = int((reset - timezone.now()).total_seconds())
        raise ApiError(
            429,
            message,
            code="quota_exceeded" if not wait else "rate_limit_exceeded",
            retry_after=retry,
        ) from None

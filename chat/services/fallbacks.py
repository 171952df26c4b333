"""Fallback chains (``ModelSetting.fallback_models``): when a model fails *before its first byte*
with 429, a 5xx or no connection, the same request goes to the next model of the chain. Once an
answer has started streaming it is never retried silently. Used by the chat (turn requests) and
the API (``chat.api.relay``); the answering model is what the turn or usage record names.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from chat.models import ModelSetting, Provider
from chat.services.providers import client_for
from chat.upstream.events import Event, Failed, Started
from chat.upstream.request import Api

# Before the first byte, these mean "this model cannot answer now": try the next one.
RETRY_KINDS = frozenset({"connection"})


def retryable_status(status: int | None) -> bool:
    return status is not None and (status == 429 or status >= 500)


def retryable_failure(failure: Failed) -> bool:
    return failure.kind in RETRY_KINDS or (
        failure.kind == "http" and retryable_status(failure.status_code)
    )


def retry_after_seconds(value: str | None, cap: float) -> float:
    """The upstream's ``Retry-After`` (seconds form) bounded by ``cap``; 0 without one."""
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return max(0.0, min(seconds, cap))


async def chain_for(provider_id: int, model: str) -> list[str]:
    """``model`` then its fallbacks, without repeats."""
    found = await (
        ModelSetting.objects.filter(provider_id=provider_id, model=model)
        .values_list("fallback_models", flat=True)
        .afirst()
    )
    chain = [model]
    for entry in found or []:
        if isinstance(entry, str) and entry.strip() and entry.strip() not in chain:
            chain.append(entry.strip())
    return chain


async def stream_event_batches(
    provider: Provider, api: str, body: dict[str, Any]
) -> AsyncIterator[list[Event]]:
    """The chat's upstream stream with the model's fallback chain, one network read's events
    at a time (see ``GatewayClient.stream_responses_batches``): a retryable failure that
    arrives before any other event moves on to the next model; the ``Started`` event of the
    answering request names the model that answered. The chain is read only after a failure,
    so a turn whose model answers costs no query for it."""
    client = client_for(provider)
    chain: list[str] | None = None
    position, model = 0, body.get("model", "")
    while True:
        attempt = {**body, "model": model}
        if api == Api.CHAT:
            stream = client.stream_chat_batches(attempt)
        else:
            stream = client.stream_responses_batches(attempt)
        answered = False
        retry = False
        async with contextlib.aclosing(stream) as batches:
            async for batch in batches:
                first = batch[0]
                if isinstance(first, Failed) and not answered and retryable_failure(first):
                    if chain is None:
                        chain = await chain_for(provider.pk, body.get("model", ""))
                    if position + 1 < len(chain):
                        retry = True
                        break  # next model
                if not answered and position and not isinstance(first, Started):
                    # The fallback's own Started may not name it (Chat Completions): say so.
                    batch = [Started(None, model), *batch]
                answered = True
                yield _naming(batch, model)
        if not retry:
            return
        position += 1
        model = chain[position]


def _naming(batch: list[Event], model: str) -> list[Event]:
    """The batch with each ``Started`` naming the model asked when the gateway named none."""
    for index, event in enumerate(batch):
        if type(event) is Started and not event.model:
            batch[index] = Started(event.response_id, model)
    return batch

"""Providers: the default one, their model lists (cached) and their pooled upstream clients."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

from chat.models import Provider
from chat.startup import demo_gateway_key
from chat.upstream.client import GatewayClient, GatewayError, Timeouts, get_client

DEMO_PROVIDER_NAME = "Demo gateway"
ENV_PROVIDER_NAME = "Default gateway"


def ensure_default_provider() -> Provider | None:
    """Create the default provider on an empty install: from the environment, else the demo."""
    if Provider.objects.exists():
        return Provider.objects.filter(is_default=True).first()
    if settings.OPENAI_BASE_URL:
        provider = Provider(
            name=ENV_PROVIDER_NAME, base_url=settings.OPENAI_BASE_URL, is_default=True
        )
        provider.set_api_key(settings.OPENAI_API_KEY)
    elif settings.DEMO_GATEWAY_ENABLED:
        provider = Provider(
            name=DEMO_PROVIDER_NAME, base_url=settings.DEMO_GATEWAY_URL, is_default=True
        )
        provider.set_api_key(demo_gateway_key())
    else:
        return None
    provider.save()
    return provider


def default_provider() -> Provider | None:
    return (
        Provider.objects.filter(enabled=True, is_default=True).first()
        or Provider.objects.filter(enabled=True).first()
        or ensure_default_provider()
    )


def client_for(provider: Provider) -> GatewayClient:
    timeouts = Timeouts(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        total=settings.UPSTREAM_TOTAL_TIMEOUT,
    )
    return get_client(f"provider-{provider.pk}", provider.base_url, provider.api_key, timeouts)


@dataclass(frozen=True)
class ProviderModels:
    """The models one provider offers, or why it could not tell us."""

    provider_id: int
    provider_name: str
    models: tuple[str, ...] = ()
    error: str = ""

    @property
    def options(self) -> list[tuple[str, str]]:
        """(value, label) pairs for the model picker; the value names the provider too."""
        return [(f"{self.provider_id}:{model}", model) for model in self.models]


def _cache_key(provider: Provider) -> str:
    return f"models:{provider.pk}:{provider.base_url}"


async def models_of(provider: Provider, *, refresh: bool = False) -> ProviderModels:
    key = _cache_key(provider)
    if not refresh and (cached := await cache.aget(key)) is not None:
        return cached
    try:
        ids = await client_for(provider).list_models()
        result = ProviderModels(provider.pk, provider.name, tuple(ids))
        await cache.aset(key, result, settings.MODEL_LIST_CACHE_SECONDS)
    except GatewayError as exc:
        # A provider that is down is shown as such; not cached long, so it recovers quickly.
        result = ProviderModels(provider.pk, provider.name, error=str(exc))
        await cache.aset(key, result, 15)
    return result


async def all_models(*, refresh: bool = False) -> list[ProviderModels]:
    """Model lists of every enabled provider, fetched concurrently."""
    providers = await sync_to_async(list)(Provider.objects.filter(enabled=True))
    if not providers:
        provider = await sync_to_async(default_provider)()
        providers = [provider] if provider else []
    return list(await asyncio.gather(*(models_of(p, refresh=refresh) for p in providers)))

"""Providers: the default one, their model lists (cached) and their pooled upstream clients."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from chat.models import ModelSetting, Provider
from chat.request_ids import parse_id
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
    try:
        with transaction.atomic():
            provider.save()
    except IntegrityError:  # another worker starting at the same moment created it (unique name)
        return Provider.objects.filter(is_default=True).first()
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
    # (model id, display name) for the models staff renamed.
    display_names: tuple[tuple[str, str], ...] = ()
    # The models the gateway's list says read files: documents go to them as Chat "file" parts.
    file_models: frozenset[str] = frozenset()

    @property
    def options(self) -> list[tuple[str, str]]:
        """(value, label) pairs for the model picker; the value names the provider too."""
        names = dict(self.display_names)
        return [(f"{self.provider_id}:{model}", names.get(model, model)) for model in self.models]


def _cache_key(provider: Provider) -> str:
    return f"models:{provider.pk}:{provider.base_url}"


async def models_of(provider: Provider, *, refresh: bool = False) -> ProviderModels:
    """The models users may pick: the gateway's list without those staff disabled."""
    return await _apply_model_settings(await _gateway_models(provider, refresh=refresh))


async def _apply_model_settings(result: ProviderModels) -> ProviderModels:
    disabled, names = set(), []
    async for setting in ModelSetting.objects.filter(provider_id=result.provider_id).only(
        "model", "enabled", "display_name"
    ):
        if not setting.enabled:
            disabled.add(setting.model)
        elif setting.display_name:
            names.append((setting.model, setting.display_name))
    if not disabled and not names:
        return result
    models = tuple(model for model in result.models if model not in disabled)
    return replace(result, models=models, display_names=tuple(names))


async def _gateway_models(provider: Provider, *, refresh: bool = False) -> ProviderModels:
    key = _cache_key(provider)
    if not refresh and (cached := await cache.aget(key)) is not None:
        return cached
    try:
        ids, file_models = await client_for(provider).list_models_and_inputs()
        result = ProviderModels(provider.pk, provider.name, tuple(ids), file_models=file_models)
        await cache.aset(key, result, settings.MODEL_LIST_CACHE_SECONDS)
    except GatewayError as exc:
        # A provider that is down is shown as such; not cached long, so it recovers quickly.
        result = ProviderModels(provider.pk, provider.name, error=str(exc))
        await cache.aset(key, result, 15)
    return result


def takes_file_parts(provider: Provider | None, model: str) -> bool:
    """Whether the provider's (cached) model list says ``model`` reads files; False when the
    list is not cached: the document's text is sent then, which every model reads."""
    if provider is None:
        return False
    cached = cache.get(_cache_key(provider))
    return isinstance(cached, ProviderModels) and model in cached.file_models


async def all_models(*, refresh: bool = False) -> list[ProviderModels]:
    """Model lists of every enabled provider, fetched concurrently."""
    providers = await sync_to_async(list)(Provider.objects.filter(enabled=True))
    if not providers:
        provider = await sync_to_async(default_provider)()
        providers = [provider] if provider else []
    return list(await asyncio.gather(*(models_of(p, refresh=refresh) for p in providers)))


def model_defaults(provider: Provider | int, model: str) -> dict:
    """The parameters staff set for this model (``ModelSetting.default_params``): a turn sends
    them unless its chat sets the same parameter (``{**model_defaults(...), **thread.params}``)."""
    provider_id = provider if isinstance(provider, int) else provider.pk
    found = (
        ModelSetting.objects.filter(provider_id=provider_id, model=model)
        .values_list("default_params", flat=True)
        .first()
    )
    return dict(found or {})


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    models: tuple[str, ...] = ()


def _without_key(text: str, api_key: str) -> str:
    """Never echo a key back, even if an upstream put it in its error message."""
    return text.replace(api_key, "…") if api_key and len(api_key) >= 4 else text


async def check_connection(provider: Provider) -> ConnectionResult:
    """``GET /v1/models`` with the provider's URL and key, in a client of its own (not pooled).

    The result is in plain words for staff; a success also refreshes the cached model list."""
    try:
        api_key = provider.api_key
    except ValueError as exc:
        return ConnectionResult(False, f"Not tested: {exc} Enter the key again.")
    timeouts = Timeouts(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        total=min(settings.UPSTREAM_TOTAL_TIMEOUT, 30.0),
    )
    client = GatewayClient(provider.base_url, api_key, timeouts=timeouts)
    try:
        ids = tuple(await client.list_models())
    except GatewayError as exc:
        return ConnectionResult(False, "Connection failed: " + _without_key(exc.message, api_key))
    finally:
        await client.aclose()
    await cache.adelete(_cache_key(provider))
    if not ids:
        return ConnectionResult(True, "Connected, but the gateway lists no models.")
    shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
    count = f"{len(ids)} model{'s' if len(ids) != 1 else ''}"
    return ConnectionResult(True, f"Connected: the gateway offers {count}: {shown}.", ids)


def parse_model_choice(value: str) -> tuple[Provider | None, str]:
    """``"<provider id>:<model id>"`` from the model picker → (enabled provider, model)."""
    provider_id, _, model = value.partition(":")
    provider_pk = parse_id(provider_id)
    if provider_pk is None or not model:
        return None, ""
    return Provider.objects.filter(pk=provider_pk, enabled=True).first(), model

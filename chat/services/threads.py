"""Changes to a thread's own fields: creating it (from a preset), its model, title and settings,
and presets (a thread's model, API, parameters and tools saved under a name)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from chat.models import Preset, Thread, ToolDefinition
from chat.services import conversation, model_access, providers
from chat.services.refusals import TurnRejected
from chat.upstream.request import Api


class PresetRefused(Exception):
    """A preset that cannot be saved under that name; the text is shown to the user."""


def create_thread(
    user: AbstractBaseUser,
    *,
    model_choice: str,
    api: str,
    preset_id: int | None,
    text: str,
    has_files: bool = False,
) -> Thread:
    """A new chat for its first message ``text``, with the chosen model and API, then the
    preset's settings if one was picked. Raises ``TurnRejected`` (and creates nothing) when no
    model is chosen or the message cannot be sent."""
    provider, model = providers.parse_model_choice(model_choice)
    if provider is None:
        raise TurnRejected(_("Pick a model first."))
    if not (has_files and not text.strip()):  # a first message may be only files
        conversation.validate_message(text, settings.MAX_MESSAGE_CHARS)
    api = api if api in Api.values() else ""
    thread = Thread.objects.create(owner=user, provider=provider, model=model, api=api)
    preset = Preset.objects.filter(owner=user, pk=preset_id).first() if preset_id else None
    if preset is not None:
        apply_preset(thread, preset)
    return thread


def apply_preset(thread: Thread, preset: Preset) -> None:
    """Start a chat from a preset: its model, API, parameters and tools."""
    if preset.provider_id and preset.model:
        thread.provider_id, thread.model = preset.provider_id, preset.model
    thread.api, thread.params = preset.api, preset.params
    thread.save()
    thread.tools.set(preset.tools.all())


class ModelRefused(Exception):
    """The picked model cannot be used: ``unknown`` when it is not offered at all."""

    def __init__(self, message: str, *, unknown: bool) -> None:
        super().__init__(message)
        self.unknown = unknown


def choose_model(thread: Thread, model_choice: str, *, user) -> None:
    """Switch the thread to the picked ``"<provider id>:<model id>"``, if ``user`` may use it."""
    provider, model = providers.parse_model_choice(model_choice)
    if provider is None:
        raise ModelRefused(_("That model is not available."), unknown=True)
    if not model_access.may_use_model(user, provider, model):
        raise ModelRefused(model_access.refusal(model), unknown=False)
    thread.provider, thread.model = provider, model
    thread.save(update_fields=["provider", "model", "updated_at"])


def rename(thread: Thread, title: str) -> None:
    thread.title = title
    thread.title_source = Thread.TitleSource.USER  # a model title never replaces it
    thread.save(update_fields=["title", "title_source", "updated_at"])


def save_settings(
    thread: Thread, *, api: str, params: dict[str, Any], tools: Iterable[ToolDefinition]
) -> None:
    """The settings panel's checked values: API, request parameters and tools, together."""
    with transaction.atomic():
        thread.api, thread.params = api, params
        thread.save(update_fields=["api", "params", "updated_at"])
        thread.tools.set(tools)


def save_preset(
    user: AbstractBaseUser, thread: Thread, name: str, *, start_prompt: Any = None
) -> Preset:
    """Save (or overwrite) the user's preset ``name`` from the thread's current settings (and
    the prompt it starts chats with, if any)."""
    name = name.strip()[:100]
    if not name:
        raise PresetRefused(_("Give the preset a name."))
    try:
        with transaction.atomic():
            preset, _created = Preset.objects.update_or_create(
                owner=user,
                name=name,
                defaults={
                    "provider": thread.provider,
                    "model": thread.model,
                    "api": thread.api,
                    "params": thread.params,
                    "start_prompt": start_prompt,
                },
            )
            preset.tools.set(thread.tools.all())
    except IntegrityError as exc:
        raise PresetRefused(_("That name is taken.")) from exc
    return preset

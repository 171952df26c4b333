"""Chat titles written by a model after the first answer (a cheap one, chosen per provider).

The first message's first line is the title until then, and stays the title when the model
cannot be reached or answers nothing usable. A title the user set is never replaced: the model's
title is stored only while the title is still the first-line one (``Thread.title_source``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from channels.db import database_sync_to_async
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from chat.models import ModelSetting, Provider, Thread, Turn, UsageRecord
from chat.services import conversation, permissions, providers, usage
from chat.upstream.client import GatewayError
from chat.upstream.events import Failed, TextDelta, Usage
from chat.upstream.request import Api

log = logging.getLogger(__name__)

# The instructions name "a short title": the demo gateway answers such requests with a title.
INSTRUCTIONS = (
    "Write a short title (at most 6 words) for a conversation that starts with the user's "
    "message below. Write it in the language of that message. Answer with the title only: "
    "no quotes, no trailing punctuation."
)
# How much of the first message is sent: enough to know what the chat is about.
MESSAGE_CHARS = 2000
# ``#word`` and ``#word=value`` tokens: the demo gateway's directives, never a chat's topic.
_DIRECTIVE = re.compile(r"(?<!\S)#[a-z]+(?:=\S*)?(?!\S)")
_SMALL_SUFFIXES = ("-nano", "-mini")
RETITLED = "thread.retitled"

# Running title tasks (kept referenced so they are not collected before they finish).
_tasks: set[asyncio.Task] = set()


def text_to_title(text: str) -> str:
    """The first message as sent to the title model: directives removed, cut to a size."""
    cleaned = _DIRECTIVE.sub("", text)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned[:MESSAGE_CHARS]


def clean_title(answer: str) -> str:
    """The model's answer as a title: its first non-empty line, without quotes, markdown or
    trailing punctuation, at most the title length; "" when nothing usable is left."""
    line = next((ln for ln in answer.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(title\s*:\s*)", "", line.strip(), flags=re.IGNORECASE)
    line = line.strip(" \t\"'\u201c\u201d\u2018\u2019`*#_").rstrip(".!,;:")
    line = " ".join(line.split())
    if len(line) > conversation.TITLE_LENGTH:
        line = line[: conversation.TITLE_LENGTH].rsplit(" ", 1)[0] + "…"
    return line


def pick_title_model(provider: Provider, listed: tuple[str, ...] | list[str], own: str) -> str:
    """The model that writes titles: the provider's choice, else the smallest model listed
    (an id ending in -nano or -mini, preferring the chat model's own family, then the shortest
    id), else the chat's own model."""
    if provider.title_model:
        return provider.title_model
    small = [m for m in listed if m.endswith(_SMALL_SUFFIXES)]
    if not small:
        return own
    family = own.split("-mini")[0].split("-nano")[0]
    return min(small, key=lambda m: (not m.startswith(family), len(m), m))


def is_first_answer(turn: Turn) -> bool:
    """The thread's only turn, answered, under a title nobody but its first line wrote."""
    return (
        turn.status == Turn.Status.COMPLETED
        and turn.parent_id is None
        and not Turn.objects.filter(thread_id=turn.thread_id).exclude(pk=turn.pk).exists()
        and Thread.objects.filter(
            pk=turn.thread_id, title_source=Thread.TitleSource.MESSAGE
        ).exists()
    )


def schedule_after(turn: Turn) -> None:
    """The runner's hook, after a turn's end is stored: title the chat in the background when
    this was its first answer. Never raises (the turn is done whatever happens here)."""
    if not settings.AUTO_TITLES or turn.parent_id is not None:
        return
    if turn.status != Turn.Status.COMPLETED:
        return
    task = asyncio.get_running_loop().create_task(generate(turn.pk))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def wait_all() -> None:
    """Wait for the running title tasks (tests, shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


def _request_body(api: str, model: str, text: str) -> dict:
    if api == Api.CHAT:
        messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}]
        return {"model": model, "messages": messages, "stream": False}
    return {"model": model, "instructions": INSTRUCTIONS, "input": text, "stream": False}


async def ask_for_title(provider: Provider, api: str, model: str, text: str) -> tuple[str, Usage]:
    """One non-streamed request; the answer's text and usage. Raises ``GatewayError``."""
    client = providers.client_for(provider)
    body = _request_body(api, model, text)
    stream = client.stream_chat(body) if api == Api.CHAT else client.stream_responses(body)
    parts: list[str] = []
    used = Usage()
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Usage):
                used = event
            elif isinstance(event, Failed):
                raise GatewayError(event.message, event.kind)
    return "".join(parts), used


def _plan(turn_id: int) -> tuple[Turn, Provider, str, str] | None:
    turn = Turn.objects.select_related("thread", "provider").filter(pk=turn_id).first()
    if turn is None or turn.provider is None or not turn.provider.enabled:
        return None
    if not is_first_answer(turn):
        return None
    return turn, turn.provider, conversation.api_for(turn.thread, turn.provider), turn.model


def _store(turn: Turn, provider: Provider, model: str, api: str, title: str, used: Usage) -> bool:
    """Record the usage; store the title unless someone set one meanwhile. True if stored."""
    setting = ModelSetting.objects.filter(provider=provider, model=model).first()
    UsageRecord.objects.create(
        created_at=timezone.now(),
        user_id=turn.author_id,
        thread_id=turn.thread_id,
        provider=provider,
        provider_name=provider.name,
        model=model,
        api=api,
        status=Turn.Status.COMPLETED,
        input_tokens=used.input_tokens,
        cached_tokens=used.cached_tokens,
        output_tokens=used.output_tokens,
        reasoning_tokens=used.reasoning_tokens,
        total_tokens=used.total_tokens or used.input_tokens + used.output_tokens,
        cost=usage.cost_of(setting, used.input_tokens, used.cached_tokens, used.output_tokens),
        kind="title",
    )
    if not title:
        return False
    # Conditional: a rename between the request and now wins. updated_at stays (no reordering).
    return bool(
        Thread.objects.filter(pk=turn.thread_id, title_source=Thread.TitleSource.MESSAGE).update(
            title=title, title_source=Thread.TitleSource.MODEL
        )
    )


async def generate(turn_id: int) -> str:
    """Title the chat of ``turn_id`` (its first answer) with a model; the new title, or "" when
    the first-line title stays (not a first answer, gateway error, empty answer)."""
    try:
        plan = await database_sync_to_async(_plan)(turn_id)
        if plan is None:
            return ""
        turn, provider, api, own_model = plan
        listed = (await providers.models_of(provider)).models
        model = pick_title_model(provider, listed, own_model)
        text = text_to_title(turn.user_text)
        if not text:
            return ""
        answer, used = await ask_for_title(provider, api, model, text)
        title = clean_title(answer)
        stored = await database_sync_to_async(_store)(turn, provider, model, api, title, used)
    except GatewayError as exc:
        log.info("no model title for turn %s: %s", turn_id, exc)
        return ""
    except Exception:
        log.exception("could not title the chat of turn %s", turn_id)
        return ""
    if not stored:
        return ""
    from chat import live  # (live imports the services that import this module)

    with contextlib.suppress(Exception):  # open pages see it on their next load
        await live.publish(
            turn.thread_id, live.ThreadRetitled(type="thread.retitled", thread_id=turn.thread_id)
        )
    return title


def retitled_html(user, thread_id: int) -> str:
    """For an open page of the chat: its new title (header and page title) and the sidebar,
    both swapped out of band ("" when the user may no longer see the chat)."""
    from chat.services import sidebar

    thread = permissions.thread_for(user, thread_id)
    if thread is None:
        return ""
    context = {
        "thread": thread,
        "user": user,
        "oob": True,
        "page_title": f"{thread.title} · Switchboard",
        **sidebar.sidebar_context(user),
    }
    return render_to_string("chat/retitled.html", context)

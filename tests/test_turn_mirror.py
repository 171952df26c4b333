"""A running turn's text mirrored in Redis, read by the reaper when the runner's worker died."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.models import Turn
from chat.services import turn_mirror
from chat.services.turns import registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mirrored(settings, redis_server):
    """Redis configured (the test's own server): the mirror is on."""
    settings.REDIS_URL = redis_server.url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": redis_server.url, "socket_timeout": None}],
                "prefix": "t-mirror.",
            },
        }
    }
    return redis_server


@pytest.fixture
def dead_turn(make_thread, user):
    """A running turn whose worker died 30 s ago, after checkpointing part of its answer."""
    return Turn.objects.create(
        thread=make_thread(user),
        author=user,
        user_text="q",
        output_text="The answer so far",
        reasoning_text="Thinking",
        heartbeat_at=timezone.now() - timedelta(seconds=30),
    )


async def _reap(turn: Turn) -> Turn:
    await database_sync_to_async(registry.mark_interrupted_turns)(older_than=20)
    return await Turn.objects.aget(pk=turn.pk)


async def test_the_reaper_stores_the_text_mirrored_after_the_last_checkpoint(mirrored, dead_turn):
    mirror = turn_mirror.TextMirror(dead_turn.pk)
    answer, reasoning = ["The answer so far"], ["Thinking"]
    await mirror.write(answer, reasoning)
    answer += [", and the rest", " the viewers saw."]
    reasoning.append(" hard.")
    await mirror.write(answer, reasoning)  # appended, not rewritten
    turn = await _reap(dead_turn)
    assert turn.status == Turn.Status.INTERRUPTED
    assert turn.output_text == "The answer so far, and the rest the viewers saw."
    assert turn.reasoning_text == "Thinking hard."


async def test_a_mirror_emptied_by_a_redis_restart_is_written_whole_again(mirrored, dead_turn):
    mirror = turn_mirror.TextMirror(dead_turn.pk)
    answer = ["The answer so far"]
    await mirror.write(answer, [])
    await asyncio.to_thread(mirrored.restart, 0.2)
    answer.append(" and é more")  # the key is gone: appending alone would keep only this
    await mirror.write(answer, [])
    assert turn_mirror.read([dead_turn.pk]) == {dead_turn.pk: ("The answer so far and é more", "")}
    assert (await _reap(dead_turn)).output_text == "The answer so far and é more"


async def test_a_checkpoint_newer_than_the_mirror_is_kept(mirrored, dead_turn):
    await turn_mirror.TextMirror(dead_turn.pk).write(["The answer"], [])  # before the checkpoint
    turn = await _reap(dead_turn)
    assert (turn.output_text, turn.reasoning_text) == ("The answer so far", "Thinking")


async def test_without_redis_nothing_is_mirrored_and_the_checkpoint_is_kept(settings, dead_turn):
    settings.REDIS_URL = ""
    await turn_mirror.TextMirror(dead_turn.pk).write(["The answer so far and more"], [])
    assert (await _reap(dead_turn)).output_text == "The answer so far"


async def test_a_viewer_of_a_dead_runners_turn_is_shown_the_mirrored_text(mirrored, dead_turn):
    """Before the reaper gets to it, a socket shows a running turn from the database."""
    await turn_mirror.TextMirror(dead_turn.pk).write(["The answer so far", " and more"], [])
    assert await asyncio.to_thread(turn_mirror.read, [dead_turn.pk])  # a pooled connection...
    await asyncio.to_thread(mirrored.restart, 0.2)  # ...that Redis closed
    await turn_mirror.TextMirror(dead_turn.pk).write(["The answer so far", " and more"], [])
    turn = await Turn.objects.aget(pk=dead_turn.pk)
    shown = await database_sync_to_async(turn_mirror.freshened)(turn)
    assert shown.output_text == "The answer so far and more"

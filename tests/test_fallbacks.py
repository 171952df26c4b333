"""Fallback chains in the chat: a model failing before its first byte hands the turn to the next
model of its chain (staff set it per model); once the answer streams, no silent retry."""

from __future__ import annotations

import pytest

from chat.models import ModelSetting, Turn, UsageRecord
from chat.services.fallbacks import retry_after_seconds
from chat.services.turns import launch, registry

pytestmark = pytest.mark.django_db(transaction=True)


async def run_turn(user, thread, text: str) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


@pytest.fixture
def big_thread(make_thread, user, provider):
    ModelSetting.objects.create(
        provider=provider, model="gpt-5.4", fallback_models=["gpt-5.4-mini"]
    )
    return make_thread(user, model="gpt-5.4")


@pytest.mark.parametrize("fault", ["503", "429", "500"])
async def test_a_failing_model_falls_back_and_the_turn_names_the_answering_model(
    user, big_thread, demo_requests, fault
):
    turn = await run_turn(user, big_thread, f"Hello #fault={fault}@gpt-5.4")
    assert turn.status == Turn.Status.COMPLETED
    assert "Echo: Hello" in turn.output_text
    assert turn.model == "gpt-5.4-mini"
    assert [body["model"] for body in demo_requests()] == ["gpt-5.4", "gpt-5.4-mini"]
    record = await UsageRecord.objects.aget(turn_id=turn.pk)
    assert record.model == "gpt-5.4-mini"


async def test_no_retry_once_the_answer_started(user, big_thread, demo_requests):
    turn = await run_turn(user, big_thread, "Cut #fault=cut@gpt-5.4")
    assert turn.status == Turn.Status.FAILED
    assert turn.output_text  # the part that arrived is kept
    assert turn.model == "gpt-5.4"
    assert [body["model"] for body in demo_requests()] == ["gpt-5.4"]


async def test_without_a_chain_the_failure_is_shown(user, make_thread, demo_requests):
    thread = await make_thread_async(make_thread, user)
    turn = await run_turn(user, thread, "Hello #fault=503")
    assert turn.status == Turn.Status.FAILED and "503" in turn.error
    assert len(demo_requests()) == 1


async def make_thread_async(make_thread, user):
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_thread)(user)


def test_retry_after_is_capped():
    assert retry_after_seconds("1", 5) == 1
    assert retry_after_seconds("120", 5) == 5
    assert retry_after_seconds("soon", 5) == 0
    assert retry_after_seconds(None, 5) == 0

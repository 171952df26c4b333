import asyncio
import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse
from chat.models import Turn, UsageRecord
from chat.services import generation

pytestmark = pytest.mark.django_db(transaction=True)


async def test_repro_delete(user, make_thread, client):
    thread = await sync_to_async(make_thread)(user)
    turn = await generation.start_turn(user, thread.pk, "long one #chunks=400 #delay=10")
    runner = generation._running[turn.pk]
    for _ in range(200):
        await asyncio.sleep(0.02)
        if len(runner.state.text) > 5:
            break
    await sync_to_async(client.force_login)(user)
    r = await sync_to_async(client.post)(reverse("chat:delete", args=[thread.pk]))
    print(r.status_code)
    await asyncio.wait_for(asyncio.shield(runner.task), 10)
    print(runner.state.status, len(runner.state.text))
    assert await UsageRecord.objects.acount() == 1

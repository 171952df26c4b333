"""Each message shows its time (relative, exact on hover) and each answer its cost next to its
tokens, in the reader's language and the site's currency (issue 18, item 8)."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import formats, timezone, translation

from chat import fragments
from chat.models import ModelSetting, Turn, UsageRecord
from chat.templatetags.message_meta import money
from tests.ws import receive_until, socket

TIME = re.compile(r'<time class="message-time" datetime="([^"]+)" title="([^"]+)">([^<]+)</time>')
COST = re.compile(r'<span class="turn-cost" title="[^"]+">([^<]+)</span>')


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


def finished_turn(thread, *, minutes_ago: int, cost: Decimal | None) -> Turn:
    turn = Turn.objects.create(
        thread=thread,
        author=thread.owner,
        user_text="What is 2+2?",
        output_text="4",
        model="demo-chat",
        status=Turn.Status.COMPLETED,
        input_tokens=1200,
        output_tokens=300,
        total_tokens=1500,
    )
    moment = timezone.now() - dt.timedelta(minutes=minutes_ago)
    Turn.objects.filter(pk=turn.pk).update(created_at=moment, finished_at=moment)
    thread.current_turn = turn
    thread.save(update_fields=["current_turn"])
    if cost is not None:
        UsageRecord.objects.create(
            user=thread.owner, thread=thread, turn=turn, model="demo-chat", cost=cost
        )
    return Turn.objects.get(pk=turn.pk)


def test_the_thread_page_shows_each_messages_time_and_the_answers_cost(logged_in_client, thread):
    turn = finished_turn(thread, minutes_ago=3, cost=Decimal("0.004250"))
    page = logged_in_client.get(f"/t/{thread.pk}/").content.decode()
    times = TIME.findall(page)
    assert len(times) == 2  # the question and the answer
    local = timezone.localtime(turn.created_at)
    for iso, exact, relative in times:
        assert abs(dt.datetime.fromisoformat(iso) - turn.created_at) < dt.timedelta(seconds=1)
        # The time as the language writes it ("4 a.m." on the hour, "4:03 a.m." otherwise).
        assert str(local.year) in exact and formats.time_format(local) in exact
        assert html_lib.unescape(relative) == "3\xa0minutes ago"
    footer = page[page.index('<footer class="turn-meta">') :]
    footer = footer[: footer.index("</footer>")]
    assert COST.findall(footer) == ["$0.0043"]  # two significant digits of a fraction of a cent
    assert footer.index("tokens</span>") < footer.index('class="turn-cost"')  # next to them


def test_an_answer_without_a_recorded_cost_shows_none(logged_in_client, thread):
    finished_turn(thread, minutes_ago=1, cost=None)
    page = logged_in_client.get(f"/t/{thread.pk}/").content.decode()
    assert "turn-cost" not in page
    assert len(TIME.findall(page)) == 2


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("0.000123"), "$", "$0.00012"),
        (Decimal("0.0123"), "€", "€0.012"),
        (Decimal("1234.5"), "CHF ", "CHF 1,234.50"),
        (Decimal("0.5"), "¥", "¥0.50"),
    ],
)
def test_costs_use_the_site_currency(settings, amount, currency, shown):
    settings.COST_CURRENCY = currency
    assert money(amount) == shown


def test_costs_and_times_follow_the_readers_language(thread, settings):
    settings.COST_CURRENCY = "€"
    turn = finished_turn(thread, minutes_ago=5, cost=Decimal("1234.5"))
    with translation.override("de"):  # a language whose separators differ from English
        assert money(Decimal("1234.5")) == "€1.234,50"
    with translation.override("zh-hans"):
        html = fragments.render_turn(turn)
    relative = {html_lib.unescape(text) for _, _, text in TIME.findall(html)}
    assert relative == {"5分钟之前"}, relative  # Django's own Chinese for "5 minutes ago"
    assert COST.findall(html) == ["€1,234.50"]  # project/formats/zh_Hans: grouped by thousands


@pytest.mark.django_db(transaction=True)
async def test_a_finished_answer_arrives_over_the_socket_with_its_cost(
    client, user, thread, provider
):
    await ModelSetting.objects.acreate(
        provider=provider,
        model="demo-chat",
        price_input=Decimal("2.50"),
        price_output=Decimal("10"),
    )
    await sync_to_async(client.force_login)(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    ws = socket(thread.pk, (b"origin", b"http://127.0.0.1"), cookie)
    assert (await ws.connect())[0]
    await ws.send_to(json.dumps({"action": "send", "message": "Price me #chunks=3"}))
    received = "".join(await receive_until(ws, 'class="turn-cost"'))
    await ws.disconnect()
    record = await UsageRecord.objects.aget(thread=thread)
    assert record.cost > 0
    assert COST.findall(received)[-1] == money(record.cost)
    assert TIME.search(received) is not None

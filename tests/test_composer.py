"""Issue 18, item 1 (server side): every action the composer sends gets an answer the page can
match to it (its request id, accepted or refused with the reason), so the page clears the typed
text only once the server took it (static/js/composer.js)."""

import json
import re

import pytest

from chat import fragments, ws_actions
from chat.models import Turn
from tests.ws import ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

RECEIPT = re.compile(r'<div id="action-receipt"[^>]*data-request="([^"]*)" data-outcome="(\w+)">')


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


def receipt_in(messages: list[str]) -> tuple[str, str, str]:
    """(request id, outcome, composer error text) of the receipt among ``messages``."""
    for message in messages:
        found = RECEIPT.search(message)
        if found:
            error = message.split('id="composer-error"')[1].split(">", 1)[1].split("</div>")[0]
            return found.group(1), found.group(2), error
    raise AssertionError(f"no receipt in {messages}")


async def send(ws, message: str, request_id: str) -> tuple[str, str, str]:
    await ws.send_to(json.dumps({"action": "send", "message": message, "request_id": request_id}))
    return receipt_in(await receive_until(ws, r'id="action-receipt"'))


async def test_an_accepted_message_is_named_as_accepted(thread, user, cookie_of):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    assert await send(ws, "Hello", "r1abc") == ("r1abc", "accepted", "")
    turn = await Turn.objects.aget(thread=thread)
    await receive_until(ws, finished(turn.pk))
    await ws.disconnect()


async def test_a_message_while_an_answer_streams_is_refused_with_the_reason(
    thread, user, cookie_of
):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    assert (await send(ws, "Long one #chunks=400 #delay=10", "first"))[1] == "accepted"
    request_id, outcome, error = await send(ws, "Typed while it streams", "second")
    assert (request_id, outcome) == ("second", "refused")
    assert "An answer is still being written" in error
    assert await Turn.objects.filter(thread=thread).acount() == 1
    await ws.send_to(json.dumps({"action": "stop"}))
    await ws.disconnect()


async def test_a_message_over_the_rate_limit_is_refused_with_the_reason(
    thread, user, cookie_of, settings
):
    settings.RATE_LIMIT_PER_MINUTE = 1
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    assert (await send(ws, "One", "one"))[1] == "accepted"
    turn = await Turn.objects.aget(thread=thread)
    await receive_until(ws, finished(turn.pk))
    request_id, outcome, error = await send(ws, "Two", "two")
    assert (request_id, outcome) == ("two", "refused")
    assert "sending messages too quickly" in error, error
    await ws.disconnect()


async def test_a_frame_refused_before_it_runs_still_names_its_request(thread, user, cookie_of):
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    await ws.connect()
    await ws.send_to(json.dumps({"action": "send", "message": ["not", "text"], "request_id": "x9"}))
    request_id, outcome, error = receipt_in([await ws.receive_from(timeout=5)])
    assert (request_id, outcome, error) == ("x9", "refused", ws_actions.NOT_UNDERSTOOD)
    await ws.send_to(json.dumps({"action": "send", "message": " ", "request_id": "blank"}))
    request_id, outcome, error = receipt_in([await ws.receive_from(timeout=5)])
    assert (request_id, outcome, error) == ("blank", "refused", "Type a message first.")
    assert not await Turn.objects.filter(thread=thread).aexists()
    await ws.disconnect()


def test_only_request_ids_the_page_could_make_are_named_back():
    assert ws_actions.request_id_of({"request_id": "lq3k2-Ab_9"}) == "lq3k2-Ab_9"
    for bad in ['"><script>', "x" * 65, "", 42, None]:
        assert ws_actions.request_id_of({"request_id": bad}) == ""
    # Without a request id (another form, an old page) the reply is the composer's error only.
    assert "action-receipt" not in fragments.action_receipt("", "Refused.")
    assert 'data-outcome="refused"' in fragments.action_receipt("a1", "Refused.")

"""Issue 11, findings 2 and 11: an open websocket lives no longer than its login session and its
access. Logout, a password change, the admin's reset and deactivation (form, bulk action, ORM
save) close the sockets concerned at once with the reason; and every action re-checks the
session and the thread's access, so a change nobody announced (another process without Redis)
still lets nobody act."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from chat.channel_layer import LocalChannelLayer
from chat.models import Access, ThreadShare, Turn
from chat.services import sharing
from chat.services.turns import registry
from tests.ws import ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse 42"  # make_user's


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user, title="Budget")


@sync_to_async
def browser(user) -> Client:
    """A browser of its own (its own session), logged in with the password."""
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def cookie(client: Client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def open_socket(thread_id: int, client: Client):
    ws = socket(thread_id, ORIGIN, cookie(client))
    connected, _ = await ws.connect()
    assert connected
    return ws


async def closing_code(ws) -> int:
    """The code the socket is closed with next (who-is-viewing updates aside)."""
    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output["code"]
        assert 'id="presence"' in output.get("text", ""), output


async def assert_closed_saying(ws, text: str, code: int = 4401) -> None:
    notice = await receive_until(ws, r'id="composer-error"', wait=5)
    assert text in notice[-1]
    assert await closing_code(ws) == code


async def assert_still_acts(ws) -> None:
    """The socket still answers an action (Stop with nothing running clears the notice)."""
    await ws.send_to(json.dumps({"action": "stop"}))
    reply = await ws.receive_from(timeout=5)
    assert 'id="composer-error"' in reply and "</div>" in reply
    assert "Log in again" not in reply


# -- closed at once ------------------------------------------------------------------------------


async def test_logout_closes_that_sessions_sockets_only(thread, user):
    leaving, staying = await browser(user), await browser(user)
    leaving_ws = await open_socket(thread.pk, leaving)
    staying_ws = await open_socket(thread.pk, staying)
    await sync_to_async(leaving.post)("/accounts/logout/")
    await assert_closed_saying(leaving_ws, "You logged out")
    await assert_still_acts(staying_ws)
    await staying_ws.disconnect()


@pytest.mark.parametrize("url", ["/accounts/password_change/", "/admin/password_change/"])
async def test_own_password_change_ends_other_sessions_and_keeps_this_one(staff, make_thread, url):
    thread = await sync_to_async(make_thread)(staff)
    changing, elsewhere = await browser(staff), await browser(staff)
    changing_ws = await open_socket(thread.pk, changing)
    elsewhere_ws = await open_socket(thread.pk, elsewhere)
    response = await sync_to_async(changing.post)(
        url,
        {
            "old_password": PASSWORD,
            "new_password1": "another long one 9",
            "new_password2": "another long one 9",
        },
    )
    assert response.status_code == 302
    await assert_closed_saying(elsewhere_ws, "Your password was changed")
    # This browser's session lives on under a new key: its socket is told to reconnect (a code
    # the htmx extension retries), with no notice, and reconnects with the renewed cookie.
    assert await closing_code(changing_ws) == 1012
    renewed_ws = await open_socket(thread.pk, changing)
    await assert_still_acts(renewed_ws)
    await renewed_ws.disconnect()
    # The old browser session is gone for good.
    connected, code = await socket(thread.pk, ORIGIN, cookie(elsewhere)).connect()
    assert not connected and code == 4401


async def test_admin_reset_passwords_closes_every_socket_of_those_users(
    thread, user, staff, make_user
):
    bystander = await sync_to_async(make_user)("bystander")
    await ThreadShare.objects.acreate(thread=thread, user=bystander, access=Access.READ)
    first, second = await browser(user), await browser(user)
    first_ws = await open_socket(thread.pk, first)
    second_ws = await open_socket(thread.pk, second)
    bystander_ws = await open_socket(thread.pk, await browser(bystander))
    staff_browser = await browser(staff)
    await sync_to_async(staff_browser.post)(
        "/admin/auth/user/", {"action": "reset_passwords", "_selected_action": [user.pk]}
    )
    for ws in (first_ws, second_ws):
        await assert_closed_saying(ws, "Your password was changed")
    await assert_still_acts(bystander_ws)
    await bystander_ws.disconnect()


async def test_staff_setting_a_password_closes_that_users_sockets_and_renews_their_own(
    thread, user, staff, make_thread
):
    staff_browser, staff_thread = await browser(staff), await sync_to_async(make_thread)(staff)
    staff_ws = await open_socket(staff_thread.pk, staff_browser)
    user_ws = await open_socket(thread.pk, await browser(user))
    new_password = {"password1": "set by staff 1234", "password2": "set by staff 1234"}
    response = await sync_to_async(staff_browser.post)(
        f"/admin/auth/user/{user.pk}/password/", {"usable_password": "true", **new_password}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    await assert_closed_saying(user_ws, "Your password was changed")
    # Django renewed the staff member's own session key too: their socket reconnects with it.
    assert await closing_code(staff_ws) == 1012
    renewed_ws = await open_socket(staff_thread.pk, staff_browser)
    await assert_still_acts(renewed_ws)
    await renewed_ws.disconnect()


def _admin_form_deactivates(staff_browser: Client, user: User) -> None:
    data = {
        "username": user.username,
        "email": user.email,
        "role": "member",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
        "quota-TOTAL_FORMS": "0",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
    }  # "is_active" unticked
    response = staff_browser.post(f"/admin/auth/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]


def _bulk_action_deactivates(staff_browser: Client, user: User) -> None:
    staff_browser.post("/admin/auth/user/", {"action": "deactivate", "_selected_action": [user.pk]})


def _orm_save_deactivates(staff_browser: Client, user: User) -> None:
    """What ``manage.py shell`` does."""
    user = User.objects.get(pk=user.pk)
    user.is_active = False
    user.save()


@pytest.mark.parametrize(
    "deactivate", [_admin_form_deactivates, _bulk_action_deactivates, _orm_save_deactivates]
)
async def test_deactivation_closes_the_users_sockets_at_once(thread, user, staff, deactivate):
    ws = await open_socket(thread.pk, await browser(user))
    await sync_to_async(deactivate)(await browser(staff), user)
    assert not (await User.objects.aget(pk=user.pk)).is_active
    await assert_closed_saying(ws, "Your account was deactivated")


async def test_saving_other_fields_of_the_user_leaves_the_sockets_alone(thread, user):
    ws = await open_socket(thread.pk, await browser(user))
    user.first_name = "Al"
    await sync_to_async(user.save)()
    await assert_still_acts(ws)
    await ws.disconnect()


# -- every action re-checks, whatever was missed --------------------------------------------------


async def _deactivate_silently(user: User, client: Client) -> None:
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)  # no signal


async def _change_password_silently(user: User, client: Client) -> None:
    await User.objects.filter(pk=user.pk).aupdate(password=make_password("elsewhere 12345"))


async def _delete_session_silently(user: User, client: Client) -> None:
    await Session.objects.filter(pk=client.cookies["sessionid"].value).adelete()


async def _expire_session_silently(user: User, client: Client) -> None:
    past = timezone.now() - dt.timedelta(seconds=1)
    await Session.objects.filter(pk=client.cookies["sessionid"].value).aupdate(expire_date=past)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_deactivate_silently, "Your account was deactivated"),
        (_change_password_silently, "Your password was changed"),
        (_delete_session_silently, "Your session has ended"),
        (_expire_session_silently, "Your session has ended"),
    ],
)
async def test_an_unannounced_change_refuses_the_next_action(thread, user, change, reason):
    client = await browser(user)
    ws = await open_socket(thread.pk, client)
    await change(user, client)
    await ws.send_to(json.dumps({"action": "send", "message": "still here?"}))
    await assert_closed_saying(ws, reason)
    assert not await Turn.objects.filter(thread=thread).aexists()


@pytest.fixture
def changes_from_another_process(monkeypatch):
    """Access changes made where this process's in-memory channel layer cannot hear them (the
    shell, a cron job): their announcements go to that other process's own layer."""
    elsewhere = LocalChannelLayer()
    monkeypatch.setattr(sharing, "get_channel_layer", lambda: elsewhere)


@pytest.mark.parametrize("change", ["removed", "read_only"])
async def test_access_changed_in_another_process_is_enforced_on_the_next_action(
    thread, user, make_user, changes_from_another_process, change
):
    member = await sync_to_async(make_user)("member")
    share = await ThreadShare.objects.acreate(thread=thread, user=member, access=Access.COLLABORATE)
    owner_ws = await open_socket(thread.pk, await browser(user))
    member_ws = await open_socket(thread.pk, await browser(member))
    await owner_ws.send_to(json.dumps({"message": "long one #chunks=200 #delay=10"}))
    await receive_until(member_ws, r'-tail" hx-swap-oob="innerHTML"><')
    turn = await Turn.objects.aget(thread=thread)
    if change == "removed":
        await sync_to_async(share.delete)()
    else:
        share.access = Access.READ
        await sync_to_async(share.save)()
    await member_ws.send_to(json.dumps({"action": "stop"}))
    if change == "removed":
        closed = await receive_until(member_ws, r"no longer shared with you")
        assert 'id="turns"' in closed[-1] and "long one" not in closed[-1]
        assert await closing_code(member_ws) == 4403
    else:
        refused = await receive_until(member_ws, r"read-only: you cannot change it")
        assert any('data-access="read"' in m for m in refused)
    await receive_until(owner_ws, finished(turn.pk))  # the stop was refused: it completed
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.COMPLETED
    await registry.wait_for(turn.pk)
    await owner_ws.disconnect()

"""Sharing a thread with a team or a user: who may see and change it on every endpoint and on the
socket, live viewing with presence, and revoking or downgrading a share taking effect at once."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from chat.models import Access, Team, Thread, ThreadShare, Turn
from chat.services import permissions
from chat.services.turns import registry
from tests.ws import ORIGIN, finished, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ["stranger", "reader", "collaborator", "team_reader", "team_collaborator", "owner"]
READERS = {"reader", "team_reader"}
WRITERS = {"collaborator", "team_collaborator", "owner"}


@pytest.fixture
def owner(make_user):
    return make_user("olivia")


@pytest.fixture
def thread(make_thread, owner):
    return make_thread(owner, title="Roadmap")


@pytest.fixture
def team(db):
    return Team.objects.create(name="Platform")


@pytest.fixture
def member(make_user, thread, team, owner):
    """A user with the given role on ``thread``."""

    def make(role: str):
        if role == "owner":
            return owner
        user = make_user()
        access = Access.COLLABORATE if role.endswith("collaborator") else Access.READ
        if role.startswith("team_"):
            team.members.add(user)
            ThreadShare.objects.create(thread=thread, team=team, access=access)
        elif role != "stranger":
            ThreadShare.objects.create(thread=thread, user=user, access=access)
        return user

    return make


async def finish(turn_id: int) -> Turn:
    await registry.wait_for(turn_id)
    return await Turn.objects.aget(pk=turn_id)


# -- who sees what -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_access_level_of_each_role(member, thread, role):
    user = member(role)
    expected = {
        "stranger": None,
        "reader": "read",
        "team_reader": "read",
        "collaborator": "collaborate",
        "team_collaborator": "collaborate",
        "owner": "owner",
    }[role]
    found = permissions.thread_for(user, thread.pk)
    assert (found.access if found else None) == expected


def test_the_strongest_share_wins(member, thread, team):
    user = member("team_reader")
    ThreadShare.objects.create(thread=thread, user=user, access=Access.COLLABORATE)
    assert permissions.thread_for(user, thread.pk).access == "collaborate"
    assert permissions.visible_threads(user).filter(pk=thread.pk).count() == 1  # not twice


def test_leaving_the_team_or_a_revoked_share_hides_the_thread(member, thread, team):
    by_team, by_name = member("team_reader"), member("reader")
    team.members.remove(by_team)
    ThreadShare.objects.filter(user=by_name).delete()
    assert permissions.thread_for(by_team, thread.pk) is None
    assert permissions.thread_for(by_name, thread.pk) is None


def test_shared_threads_are_listed_apart_in_the_sidebar(member, thread, client, make_thread):
    reader = member("reader")
    make_thread(reader, title="My own notes")
    client.force_login(reader)
    page = client.get(reverse("chat:home")).content.decode()
    own, shared = page.split('id="shared-heading"')
    assert "My own notes" in own and "Roadmap" not in own
    assert "Roadmap" in shared and "olivia" in shared


def test_a_stranger_has_no_shared_section(member, thread, client):
    client.force_login(member("stranger"))
    page = client.get(reverse("chat:home")).content.decode()
    assert "Shared with me" not in page and "Roadmap" not in page


# -- every HTTP endpoint, for every role -------------------------------------------------------

# (method, url name, form data, who may: "read" | "write" | "owner")
ENDPOINTS = [
    ("get", "chat:thread", None, "read"),
    ("get", "chat:export-md", None, "read"),
    ("get", "chat:export-json", None, "read"),
    ("post", "chat:set-model", {"model": "{provider}:demo-chat"}, "write"),
    ("post", "chat:rename", {"title": "Renamed"}, "owner"),
    ("get", "chat:settings", None, "owner"),
    ("post", "chat:save-preset", {"name": "Mine"}, "owner"),
    ("get", "chat:sharing", None, "owner"),
    ("post", "chat:sharing", {"username": "root", "access": "read"}, "owner"),
    ("post", "chat:delete", None, "owner"),
]
ALLOWED = {
    "read": READERS | WRITERS,
    "write": WRITERS,
    "owner": {"owner"},
}


def _url(name: str, thread: Thread) -> str:
    if name.startswith("chat:export-"):
        return reverse("chat:export", args=[thread.pk, name.rsplit("-", 1)[1]])
    return reverse(name, args=[thread.pk])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "name", "data", "needs"), ENDPOINTS)
def test_every_endpoint_checks_the_share(
    client, member, thread, provider, staff, role, method, name, data, needs
):
    client.force_login(member(role))
    if data:
        data = {key: value.format(provider=provider.pk) for key, value in data.items()}
    response = getattr(client, method)(_url(name, thread), data or {})
    if role == "stranger":
        assert response.status_code == 404  # no hint that the chat exists
    elif role in ALLOWED[needs]:
        assert response.status_code in (200, 302), response.content[:300]
    else:
        assert response.status_code == 403
        thread.refresh_from_db()
        assert thread.title == "Roadmap"  # nothing changed


@pytest.mark.parametrize("role", ["reader", "collaborator"])
def test_share_controls_of_a_revoked_or_foreign_share_are_404(client, member, thread, role):
    user = member(role)
    share = ThreadShare.objects.get(user=user)
    client.force_login(member("stranger"))
    for name in ("chat:share-change", "chat:share-revoke"):
        response = client.post(reverse(name, args=[thread.pk, share.pk]), {"access": "read"})
        assert response.status_code == 404
    assert ThreadShare.objects.filter(pk=share.pk).exists()


def test_reader_page_is_read_only_and_collaborator_page_is_not(client, member, thread):
    client.force_login(member("reader"))
    page = client.get(thread.get_absolute_url()).content.decode()
    assert 'data-access="read"' in page and "Read only: olivia shared this chat" in page
    assert ">Share<" not in page and "Delete chat" not in page and ">Settings<" not in page
    client.force_login(member("collaborator"))
    page = client.get(thread.get_absolute_url()).content.decode()
    assert 'data-access="collaborate"' in page and "Read only:" not in page
    assert "Shared by olivia · collaborate" in page


# -- the owner's sharing panel ---------------------------------------------------------------------


def test_owner_shares_with_a_user_changes_access_and_revokes(client, owner, thread, make_user):
    bob = make_user("bob")
    client.force_login(owner)
    url = reverse("chat:sharing", args=[thread.pk])
    response = client.post(url, {"username": "bob", "access": "read"})
    assert response.status_code == 200 and "Shared with bob." in response.content.decode()
    share = ThreadShare.objects.get(thread=thread, user=bob)
    assert share.access == Access.READ
    client.post(reverse("chat:share-change", args=[thread.pk, share.pk]), {"access": "collaborate"})
    share.refresh_from_db()
    assert share.access == Access.COLLABORATE
    # Sharing again with the same person changes the share, never doubles it.
    client.post(url, {"username": "bob", "access": "read"})
    assert ThreadShare.objects.get(thread=thread, user=bob).access == Access.READ
    client.post(reverse("chat:share-revoke", args=[thread.pk, share.pk]))
    assert not ThreadShare.objects.filter(thread=thread).exists()
    assert permissions.thread_for(bob, thread.pk) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": "nobody", "access": "read"}, "There is no user called"),
        ({"username": "olivia", "access": "read"}, "This is your own chat."),
        ({"username": "", "access": "read"}, "Choose a team or type a username."),
        ({"username": "root", "access": "admin"}, "Choose read only or collaborate."),
    ],
)
def test_refused_shares_say_why(client, owner, thread, staff, data, message):
    client.force_login(owner)
    response = client.post(reverse("chat:sharing", args=[thread.pk]), data)
    assert response.status_code == 422 and message in response.content.decode()
    assert not ThreadShare.objects.exists()


def test_owner_shares_only_with_their_own_teams(client, owner, thread, team):
    client.force_login(owner)
    url = reverse("chat:sharing", args=[thread.pk])
    response = client.post(url, {"team": str(team.pk), "access": "read"})
    assert response.status_code == 422 and "a team you belong to" in response.content.decode()
    team.members.add(owner)
    panel = client.get(url).content.decode()
    assert "Platform" in panel
    response = client.post(url, {"team": str(team.pk), "access": "collaborate"})
    assert response.status_code == 200
    assert ThreadShare.objects.get(thread=thread, team=team).access == Access.COLLABORATE


# -- the socket: read-only, collaborate, live viewing ----------------------------------------------


async def test_stranger_socket_is_refused(member, thread, cookie_of):
    stranger = await sync_to_async(member)("stranger")
    connected, code = await socket(thread.pk, ORIGIN, await cookie_of(stranger)).connect()
    assert not connected and code == 4403


async def test_reader_watches_live_but_every_write_is_refused(member, thread, owner, cookie_of):
    reader = await sync_to_async(member)("team_reader")
    owner_ws = socket(thread.pk, ORIGIN, await cookie_of(owner))
    reader_ws = socket(thread.pk, ORIGIN, await cookie_of(reader))
    assert (await owner_ws.connect())[0] and (await reader_ws.connect())[0]
    await owner_ws.send_to(json.dumps({"message": "Plan it #chunks=40 #delay=10"}))
    live = await receive_until(reader_ws, r'-tail" hx-swap-oob="innerHTML"><')
    assert any("Plan it" in m for m in live)  # the reader sees the new turn and the stream
    turn = await Turn.objects.aget(thread=thread)
    for action in (
        {"action": "stop"},
        {"action": "send", "message": "let me write"},
        {"action": "regenerate", "turn_id": turn.pk},
        {"action": "edit", "turn_id": turn.pk, "message": "changed"},
        {"action": "switch", "turn_id": turn.pk},
    ):
        await reader_ws.send_to(json.dumps(action))
        refusals = await receive_until(reader_ws, r"read-only: you cannot change it")
        assert 'id="composer-error"' in refusals[-1]
    await receive_until(reader_ws, finished(turn.pk))  # the stop was refused: it completed
    assert await Turn.objects.filter(thread=thread).acount() == 1
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.COMPLETED
    await owner_ws.disconnect()
    await reader_ws.disconnect()


async def test_collaborator_sends_stops_and_branches(member, thread, owner, cookie_of):
    collaborator = await sync_to_async(member)("collaborator")
    owner_ws = socket(thread.pk, ORIGIN, await cookie_of(owner))
    ws = socket(thread.pk, ORIGIN, await cookie_of(collaborator))
    assert (await owner_ws.connect())[0] and (await ws.connect())[0]
    await ws.send_to(json.dumps({"message": "From the team #chunks=400 #delay=10"}))
    seen_by_owner = await receive_until(owner_ws, r'-tail" hx-swap-oob="innerHTML"><')
    assert any("From the team" in m for m in seen_by_owner)
    turn = await Turn.objects.select_related("author").aget(thread=thread)
    assert turn.author == collaborator  # their message, their quota
    await ws.send_to(json.dumps({"action": "stop"}))
    await receive_until(owner_ws, finished(turn.pk, "cancelled"))
    await ws.send_to(json.dumps({"action": "regenerate", "turn_id": turn.pk}))
    await receive_until(ws, r'class="branch-position">2/2<')
    sibling = await Turn.objects.exclude(pk=turn.pk).aget(thread=thread)
    assert sibling.parent_id == turn.parent_id
    await finish(sibling.pk)
    await owner_ws.disconnect()
    await ws.disconnect()


async def test_revoking_a_share_closes_that_users_socket_at_once(
    member, thread, owner, client, cookie_of
):
    reader = await sync_to_async(member)("reader")
    share = await ThreadShare.objects.aget(user=reader)
    ws = socket(thread.pk, ORIGIN, await cookie_of(reader))
    assert (await ws.connect())[0]
    await ws.receive_presence()
    await sync_to_async(client.force_login)(owner)
    url = reverse("chat:share-revoke", args=[thread.pk, share.pk])
    assert (await sync_to_async(client.post)(url)).status_code == 200
    notice = await ws.receive_from(timeout=5)
    assert "no longer shared with you" in notice
    # The chat leaves the open page at once: its turns, title and sidebar entry (finding 14).
    assert '<section id="turns" class="turns" hx-swap-oob="true"' in notice
    assert 'id="sidebar-lists"' in notice and "Roadmap" not in notice
    assert 'data-access="none"' in notice and 'id="chat-header"' in notice
    closed = await ws.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4403}


async def test_leaving_the_team_closes_the_socket(member, thread, team, cookie_of):
    user = await sync_to_async(member)("team_collaborator")
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await sync_to_async(team.members.remove)(user)
    assert "no longer shared with you" in await ws.receive_from(timeout=5)
    assert (await ws.receive_output(timeout=5))["code"] == 4403


async def test_deleting_the_thread_closes_every_viewer(member, thread, cookie_of):
    reader = await sync_to_async(member)("reader")
    ws = socket(thread.pk, ORIGIN, await cookie_of(reader))
    assert (await ws.connect())[0]
    await sync_to_async(Thread.objects.filter(pk=thread.pk).delete)()
    assert "This chat was deleted." in await ws.receive_from(timeout=5)
    assert (await ws.receive_output(timeout=5))["code"] == 4403


async def test_downgrade_to_read_only_takes_effect_at_once(member, thread, cookie_of):
    user = await sync_to_async(member)("collaborator")
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await ThreadShare.objects.filter(user=user).aupdate(access=Access.READ)  # no signal…
    share = await ThreadShare.objects.aget(user=user)
    await sync_to_async(share.save)()  # …a save announces it
    state = await receive_until(ws, r'id="access-state"')
    assert 'data-access="read"' in state[-1] and "Read only:" in state[-1]
    await ws.send_to(json.dumps({"message": "still here?"}))
    assert "read-only" in (await receive_until(ws, r"composer-error"))[-1]
    assert not await Turn.objects.filter(thread=thread).aexists()
    await ws.disconnect()


async def test_presence_shows_who_is_viewing(member, thread, owner, cookie_of):
    reader = await sync_to_async(member)("reader")
    owner_ws = socket(thread.pk, ORIGIN, await cookie_of(owner))
    assert (await owner_ws.connect())[0]
    assert "olivia" in await owner_ws.receive_presence()
    reader_ws = socket(thread.pk, ORIGIN, await cookie_of(reader))
    assert (await reader_ws.connect())[0]
    both = await owner_ws.receive_presence()
    assert "olivia" in both and reader.username in both
    # The newcomer learns who was already there.
    while reader.username not in (seen := await reader_ws.receive_presence()) or (
        "olivia" not in seen
    ):
        pass
    await reader_ws.disconnect()
    alone = await owner_ws.receive_presence()
    assert "olivia" in alone and reader.username not in alone
    await owner_ws.disconnect()


def test_staff_create_a_team_in_the_admin_and_its_members_see_its_threads(
    staff_client, make_user, thread
):
    bob = make_user("bob")
    response = staff_client.post(
        reverse("admin:chat_team_add"), {"name": "Design", "members": [bob.pk]}
    )
    assert response.status_code == 302
    team = Team.objects.get(name="Design")
    assert list(team.members.all()) == [bob]
    ThreadShare.objects.create(thread=thread, team=team, access=Access.READ)
    assert permissions.thread_for(bob, thread.pk).access == "read"
    listing = staff_client.get(reverse("admin:chat_team_changelist")).content.decode()
    assert "Design" in listing

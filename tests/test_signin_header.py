"""Sign-in by a trusted reverse proxy's header: honoured from TRUSTED_PROXY_IPS only, for pages
and websockets; groups follow the groups header."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Access, AuditLogEntry, ExternalIdentity, Team, ThreadShare
from chat.routing import websocket_application
from chat.signin.header import TrustedHeaderWebsocketMiddleware
from tests.ws import HOST, ORIGIN, Socket

pytestmark = pytest.mark.django_db(transaction=True)

PROXY = "10.0.0.5"


@pytest.fixture
def header_signin(settings):
    settings.TRUSTED_USER_HEADER = "X-Forwarded-User"
    settings.TRUSTED_GROUPS_HEADER = "X-Forwarded-Groups"
    settings.TRUSTED_PROXY_IPS = ["10.0.0.0/24", "127.0.0.1"]
    settings.TRUSTED_ADMIN_GROUPS = ["ops"]


def proxied(address: str = PROXY) -> Client:
    return Client(REMOTE_ADDR=address)


def get(client: Client, path: str, user: str, groups: str = ""):
    return client.get(path, HTTP_X_FORWARDED_USER=user, HTTP_X_FORWARDED_GROUPS=groups)


def test_trusted_proxy_signs_the_person_in(header_signin, make_user):
    make_user("someone")  # not the first run
    browser = proxied()
    response = get(browser, "/", "pat@example.org", "research")
    assert response.status_code == 200
    user = response.wsgi_request.user
    assert user.username == "pat@example.org" and user.email == "pat@example.org"
    assert ExternalIdentity.objects.get(user=user).kind == "header"
    assert [team.name for team in user.teams.all()] == ["research"]
    get(browser, "/search/", "pat@example.org", "research")
    signed_in = AuditLogEntry.objects.filter(object_type="sign-in", action="signed in")
    assert signed_in.count() == 1  # once per session, not per request


def test_the_header_from_an_untrusted_address_is_refused_and_logged(
    header_signin, make_user, caplog
):
    make_user("victim", staff=True)
    response = get(proxied("192.0.2.7"), "/", "victim")
    assert response.status_code == 403
    assert not response.wsgi_request.user.is_authenticated
    refusal = AuditLogEntry.objects.get(object_type="sign-in", action="refused")
    assert "192.0.2.7" in refusal.new_value
    assert "192.0.2.7" in caplog.text


def test_untrusted_address_without_the_header_gets_the_login_page(header_signin, make_user):
    make_user("someone")
    response = proxied("192.0.2.7").get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_header_never_takes_over_a_local_account(header_signin, make_user):
    make_user("alice", staff=True)
    response = get(proxied(), "/", "alice")
    assert response.status_code == 403
    assert "already belongs to an account" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


def test_groups_header_changes_apply_at_the_next_request(header_signin, make_user, make_thread):
    owner = make_user("olivia")
    thread = make_thread(owner)
    team = Team.objects.create(name="Research", external_group="research")
    ThreadShare.objects.create(thread=thread, team=team, access=Access.READ)
    browser = proxied()
    assert get(browser, f"/t/{thread.pk}/", "pat", "research,ops").status_code == 200
    pat = get_user_model().objects.get(username="pat")
    assert pat.is_staff
    assert get(browser, f"/t/{thread.pk}/", "pat", "").status_code == 404
    pat.refresh_from_db()
    assert not pat.is_staff and not pat.teams.exists()


def test_deactivated_header_account_is_refused(header_signin, make_user):
    make_user("someone")
    get(proxied(), "/", "pat")
    get_user_model().objects.filter(username="pat").update(is_active=False)
    response = get(proxied(), "/", "pat")
    assert response.status_code == 403 and "deactivated" in response.content.decode()


def ws(thread_id: int, address: str, *headers) -> Socket:
    app = TrustedHeaderWebsocketMiddleware(websocket_application)
    communicator = Socket(app, f"/ws/threads/{thread_id}/", headers=[ORIGIN, HOST, *headers])
    communicator.scope["client"] = (address, 50000)
    return communicator


async def test_websocket_from_the_trusted_proxy_is_the_named_person(
    header_signin, make_user, make_thread
):
    owner = await sync_to_async(make_user)("olivia")
    thread = await sync_to_async(make_thread)(owner)
    named = (b"x-forwarded-user", b"olivia-sso")
    await sync_to_async(ExternalIdentity.objects.create)(
        user=owner, kind="header", issuer="X-Forwarded-User", subject="olivia-sso"
    )
    trusted = ws(thread.pk, PROXY, named)
    assert (await trusted.connect())[0]
    await trusted.disconnect()
    untrusted = ws(thread.pk, "192.0.2.7", named)
    connected, _ = await untrusted.connect()
    assert not connected
    assert await AuditLogEntry.objects.filter(action="refused", field="Proxy header").aexists()


async def test_websocket_without_the_header_uses_the_session(header_signin, make_user, cookie_of):
    owner = await sync_to_async(make_user)("olivia")
    from chat.models import Thread

    thread = await Thread.objects.acreate(owner=owner, title="Mine")
    socket = ws(thread.pk, "192.0.2.7", await cookie_of(owner))
    assert (await socket.connect())[0]
    await socket.disconnect()


def test_the_deployed_websocket_route_reads_the_header():
    from project.asgi import application

    assert isinstance(
        application.application_mapping["websocket"], TrustedHeaderWebsocketMiddleware
    )


def test_staff_see_how_each_account_signs_in(header_signin, staff_client):
    get(proxied(), "/", "pat")
    page = staff_client.get("/admin/auth/user/").content.decode()
    row_of = {line for line in page.split("<tr") if "pat</a>" in line or "root</a>" in line}
    assert any("pat</a>" in row and "Proxy header" in row for row in row_of)
    assert any("root</a>" in row and "Local password" in row for row in row_of)
    pat = get_user_model().objects.get(username="pat")
    change = staff_client.get(f"/admin/auth/user/{pat.pk}/change/").content.decode()
    assert "Proxy header" in change


def test_without_a_groups_header_teams_and_role_are_left_alone(header_signin, settings, make_user):
    settings.TRUSTED_GROUPS_HEADER = ""
    make_user("someone")
    get(proxied(), "/", "pat")
    pat = get_user_model().objects.get(username="pat")
    team = Team.objects.create(name="Research", external_group="research")
    team.members.add(pat)
    pat.is_staff = True
    pat.save()
    get(proxied(), "/", "pat")  # a new session: signs in again, with no group information
    pat.refresh_from_db()
    assert pat.is_staff and list(pat.teams.all()) == [team]

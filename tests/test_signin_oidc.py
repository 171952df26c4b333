"""OpenID Connect sign-in against a real OpenID Provider (oidc-provider under node, started by
``tests/signin_fixtures.py``): the code flow, every check on the way, and groups → teams."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Access, AuditLogEntry, ExternalIdentity, Team, ThreadShare
from tests.ws import ORIGIN, socket

pytestmark = pytest.mark.django_db(transaction=True)


def start(client: Client, oidc, next_url: str = "") -> str:
    response = client.get("/accounts/oidc/login/" + (f"?next={next_url}" if next_url else ""))
    assert response.status_code == 302
    return response["Location"]


def sign_in(client: Client, oidc, login: str, password: str | None = None, next_url: str = ""):
    """The whole flow with the provider's real login page; the app's answer to the callback."""
    back = oidc.log_in(start(client, oidc, next_url), login, password or f"{login}-pass")
    return client.get(back)


def signed_in_as(client: Client):
    return client.get("/").wsgi_request.user


def test_login_page_offers_the_provider_and_hides_passwords_when_local_login_is_off(
    oidc, client, settings
):
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with your organisation" in page and 'name="password"' in page
    settings.LOCAL_LOGIN = False
    settings.OIDC_BUTTON_LABEL = "Sign in with Example SSO"
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Example SSO" in page and 'name="password"' not in page


def test_local_password_refused_when_local_login_is_off_but_admins_keep_a_way_in(
    oidc, client, settings, user, staff
):
    settings.LOCAL_LOGIN = False
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse 42"}
    )
    assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
    assert 'name="password"' in client.get("/admin/login/").content.decode()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "correct horse 42"}
    )
    assert response.status_code == 302 and response.wsgi_request.user == staff


def test_happy_path_creates_the_account_once_and_lands_in_the_chat(oidc, client):
    authorize = urlparse(start(client, oidc))
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0]
    response = sign_in(Client(), oidc, "ann")
    assert response.status_code == 302 and response["Location"] == "/"
    user = get_user_model().objects.get(username="ann")
    assert user.email == "ann@example.org" and not user.has_usable_password()
    identity = ExternalIdentity.objects.get(user=user)
    assert (identity.kind, identity.issuer, identity.subject) == ("oidc", oidc.issuer, "ann")
    browser = Client()
    assert sign_in(browser, oidc, "ann", next_url="/search/")["Location"] == "/search/"
    assert signed_in_as(browser) == user
    assert get_user_model().objects.filter(email="ann@example.org").count() == 1
    entries = AuditLogEntry.objects.filter(object_type="sign-in", action="signed in")
    assert entries.count() == 2 and entries.first().field == "OpenID Connect"


def test_wrong_state_is_refused(oidc, client):
    back = oidc.log_in(start(client, oidc), "ann", "ann-pass")
    parts = urlparse(back)
    query = parse_qs(parts.query)
    query["state"] = ["forged-state"]
    forged = urlunparse(parts._replace(query=urlencode(query, doseq=True)))
    response = client.get(forged)
    assert response.status_code == 403
    assert "not started in this browser" in response.content.decode()
    assert not signed_in_as(client).is_authenticated
    assert not get_user_model().objects.filter(username="ann").exists()
    assert AuditLogEntry.objects.filter(object_type="sign-in", action="refused").exists()


def test_replayed_code_is_refused_by_the_provider(oidc, client):
    back = oidc.log_in(start(client, oidc), "ann", "ann-pass")
    saved_state = {k: v for k, v in client.session.items() if k.startswith("_state_")}
    assert client.get(back).status_code == 302  # the code is used once
    attacker = Client()
    session = attacker.session
    session.update(saved_state)  # even with the state of the first browser
    session.save()
    attacker.cookies["sessionid"] = session.session_key
    response = attacker.get(back)
    assert response.status_code == 403
    assert "already used or expired" in response.content.decode()
    assert not signed_in_as(attacker).is_authenticated


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("expired", "expired"), ("audience", "aud"), ("signature", "signature")],
)
def test_forged_or_stale_id_tokens_are_refused(oidc, client, mode, reason):
    oidc.tamper(mode)
    response = sign_in(client, oidc, "ann")
    assert response.status_code == 403
    text = response.content.decode()
    assert "ID token was rejected" in text and reason in text.lower()
    assert not signed_in_as(client).is_authenticated
    assert not get_user_model().objects.filter(username="ann").exists()


def test_a_rotated_signing_key_is_fetched_from_the_jwks(oidc, client):
    assert sign_in(Client(), oidc, "carol").status_code == 302  # JWKS with the first key cached
    oidc.tamper("rotate")  # now signed by a key the cached JWKS does not have
    assert sign_in(client, oidc, "ann").status_code == 302
    assert signed_in_as(client).username == "ann"


def test_email_of_a_local_account_is_refused_until_staff_link_it(oidc, client, make_user):
    local = make_user("annie")
    local.email = "ANN@example.org"
    local.save()
    response = sign_in(client, oidc, "ann")
    assert response.status_code == 403
    assert "already belongs to the account “annie”" in response.content.decode()
    assert not signed_in_as(client).is_authenticated
    refusal = AuditLogEntry.objects.get(object_type="sign-in", action="refused")
    assert "ann@example.org" in refusal.new_value
    ExternalIdentity.objects.create(user=local, kind="oidc", issuer=oidc.issuer, subject="ann")
    assert sign_in(Client(), oidc, "ann").status_code == 302  # the staff's link
    assert get_user_model().objects.filter(email__iexact="ann@example.org").count() == 1


def test_deactivated_account_or_disabled_at_the_provider_cannot_sign_in(oidc, client):
    assert sign_in(Client(), oidc, "ann").status_code == 302
    get_user_model().objects.filter(username="ann").update(is_active=False)
    response = sign_in(client, oidc, "ann")
    assert response.status_code == 403 and "deactivated" in response.content.decode()
    refusal = AuditLogEntry.objects.get(object_type="sign-in", action="refused")
    assert refusal.actor_name == "ann" and "deactivated" in refusal.new_value
    accounts = {"carol": {"password": "carol-pass", "email": "c@example.org", "disabled": True}}
    oidc.set_accounts(accounts)
    with pytest.raises(PermissionError):
        sign_in(Client(), oidc, "carol")


def test_allowed_groups_keep_others_out(oidc, client, settings):
    settings.OIDC_ALLOWED_GROUPS = ["research"]
    assert sign_in(client, oidc, "ann").status_code == 302
    response = sign_in(Client(), oidc, "carol")
    assert response.status_code == 403 and "not in a group allowed" in response.content.decode()


def test_group_claim_makes_the_team_and_admin_group_makes_staff(oidc, client, make_thread, user):
    sign_in(client, oidc, "boss")
    boss = get_user_model().objects.get(username="boss")
    assert boss.is_staff and boss.is_superuser
    team = Team.objects.get(external_group="research")
    assert team.name == "research" and list(team.members.all()) == [boss]
    assert client.get("/admin/").status_code == 200
    oidc.set_groups("boss", ["research"])
    sign_in(Client(), oidc, "boss")
    boss.refresh_from_db()
    assert not boss.is_staff and not boss.is_superuser


def test_group_team_map_names_the_team_and_unmapped_groups_are_ignored(oidc, client, settings):
    settings.GROUP_TEAM_MAP = {"research": "Research & Development"}
    settings.GROUP_TEAMS_CREATE = False
    sign_in(client, oidc, "boss")
    assert list(Team.objects.values_list("name", "external_group")) == [
        ("Research & Development", "research")
    ]


def test_manual_memberships_of_unmanaged_teams_are_kept(oidc, client):
    sign_in(Client(), oidc, "ann")
    ann = get_user_model().objects.get(username="ann")
    manual = Team.objects.create(name="Book club")
    manual.members.add(ann)
    oidc.set_groups("ann", [])
    sign_in(client, oidc, "ann")
    assert list(ann.teams.all()) == [manual]


async def test_removed_group_loses_the_team_threads_and_the_open_socket(
    oidc, make_thread, make_user
):
    owner = await sync_to_async(make_user)("olivia")
    thread = await sync_to_async(make_thread)(owner, title="Research plan")
    research = await Team.objects.acreate(name="Research", external_group="research")
    await ThreadShare.objects.acreate(thread=thread, team=research, access=Access.READ)
    browser = Client()
    await sync_to_async(sign_in)(browser, oidc, "ann")
    assert (await sync_to_async(browser.get)(f"/t/{thread.pk}/")).status_code == 200
    cookie = (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())
    ws = socket(thread.pk, ORIGIN, cookie)
    assert (await ws.connect())[0]

    await sync_to_async(oidc.set_groups)("ann", [])  # removed from the group at the provider
    await sync_to_async(sign_in)(Client(), oidc, "ann")  # their next sign-in

    assert "no longer shared with you" in await ws.receive_from(timeout=5)
    assert (await ws.receive_output(timeout=5))["code"] == 4403
    assert (await sync_to_async(browser.get)(f"/t/{thread.pk}/")).status_code == 404


def test_logout_ends_the_provider_session_too(oidc, client):
    sign_in(client, oidc, "ann")
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    end_session = urlparse(response["Location"])
    assert f"{end_session.scheme}://{end_session.netloc}" == oidc.issuer
    query = parse_qs(end_session.query)
    assert query["id_token_hint"][0] and query["client_id"] == ["switchboard"]
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert not signed_in_as(client).is_authenticated


def test_local_logout_without_oidc_stays_local(client, user):
    client.force_login(user)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


def test_without_oidc_issuer_the_routes_are_absent(client, settings, user):
    settings.OIDC_ISSUER = ""
    assert client.get("/accounts/oidc/login/").status_code == 404
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()


def test_unreachable_provider_gets_a_clear_page_not_an_error(client, settings, user):
    from tests.gateway_fixtures import free_port

    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "switchboard", "secret"
    response = client.get("/accounts/oidc/login/")
    assert response.status_code == 503
    assert "could not be reached" in response.content.decode()
    assert AuditLogEntry.objects.filter(object_type="sign-in", action="refused").exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("code=abc", "not started in this browser"),
        ("", "not started in this browser"),
        ("error=access_denied&state=x", "did not let you in"),
    ],
)
def test_stray_callbacks_are_refused_clearly(oidc, client, query, message):
    response = client.get("/accounts/oidc/callback/?" + query)
    assert response.status_code == 403
    assert message in response.content.decode()
    assert not signed_in_as(client).is_authenticated

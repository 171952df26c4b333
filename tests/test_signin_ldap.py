"""LDAP sign-in on the normal login form, against Debian's slapd started by the tests
(``tests/signin_fixtures.py``: users dora and erik, groups engineering and ops-admins)."""

from __future__ import annotations

import contextlib

import ldap
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import AuditLogEntry, ExternalIdentity, Team
from chat.signin.ldap_config import auth_ldap_settings
from tests.signin_fixtures import LDAP_GROUPS, LDAP_PEOPLE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def directory(slapd, settings):
    """Switchboard configured for the test directory (as project.settings does from LDAP_*);
    the directory's users and groups put back as they were after the test."""
    for name, value in auth_ldap_settings(
        server_uri=slapd.uri,
        user_search_base=LDAP_PEOPLE,
        group_search_base=LDAP_GROUPS,
    ).items():
        setattr(settings, name, value)
    settings.LDAP_SERVER_URI = slapd.uri
    settings.LDAP_ADMIN_GROUPS = ["ops-admins"]
    settings.AUTHENTICATION_BACKENDS = [
        "chat.signin.ldap.SwitchboardLDAPBackend",
        *settings.AUTHENTICATION_BACKENDS,
    ]
    connection = slapd.connection()
    yield connection
    engineering = f"cn=engineering,{LDAP_GROUPS}"
    members = [f"uid={uid},{LDAP_PEOPLE}".encode() for uid in ("dora", "erik")]
    connection.modify_s(engineering, [(ldap.MOD_REPLACE, "member", members)])
    with contextlib.suppress(ldap.ALREADY_EXISTS):
        connection.add_s(
            f"uid=dora,{LDAP_PEOPLE}",
            [
                ("objectClass", [b"inetOrgPerson"]),
                ("uid", [b"dora"]),
                ("cn", [b"dora"]),
                ("sn", [b"Dora"]),
                ("givenName", [b"Dora"]),
                ("mail", [b"dora@example.org"]),
                ("userPassword", [b"dora-pass"]),
            ],
        )
    connection.unbind_s()


def log_in(username: str, password: str) -> Client:
    browser = Client()
    browser.post("/accounts/login/", {"username": username, "password": password})
    return browser


def user_of(browser: Client):
    return browser.get("/").wsgi_request.user


def test_directory_user_logs_in_with_groups_and_role(directory, make_user):
    make_user("someone")
    erik = user_of(log_in("erik", "erik-pass"))
    assert erik.is_authenticated and erik.username == "erik"
    assert erik.email == "erik@example.org" and erik.first_name == "Erik"
    assert erik.is_staff  # ops-admins
    assert sorted(team.name for team in erik.teams.all()) == ["engineering", "ops-admins"]
    identity = ExternalIdentity.objects.get(user=erik)
    assert identity.kind == "ldap" and identity.subject == f"uid=erik,{LDAP_PEOPLE}"
    assert AuditLogEntry.objects.filter(action="signed in", field="LDAP").count() == 1


def test_wrong_password_is_refused(directory, make_user):
    make_user("someone")
    assert user_of(log_in("dora", "dora-pass")).is_authenticated
    browser = log_in("dora", "not her password")
    assert not user_of(browser).is_authenticated
    refusal = AuditLogEntry.objects.get(action="refused", field="LDAP")
    assert "dora" in refusal.new_value


def test_removed_user_cannot_log_in(directory, make_user):
    make_user("someone")
    assert user_of(log_in("dora", "dora-pass")).is_authenticated
    directory.delete_s(f"uid=dora,{LDAP_PEOPLE}")
    assert not user_of(log_in("dora", "dora-pass")).is_authenticated
    assert AuditLogEntry.objects.filter(action="refused", field="LDAP").exists()


def test_group_change_applies_at_the_next_login(directory, make_user):
    make_user("someone")
    dora = user_of(log_in("dora", "dora-pass"))
    assert [team.name for team in dora.teams.all()] == ["engineering"]
    engineering = f"cn=engineering,{LDAP_GROUPS}"
    directory.modify_s(
        engineering, [(ldap.MOD_DELETE, "member", [f"uid=dora,{LDAP_PEOPLE}".encode()])]
    )
    dora = user_of(log_in("dora", "dora-pass"))
    assert dora.is_authenticated and not dora.teams.exists()
    assert Team.objects.get(name="engineering").members.filter(username="erik").exists() is False
    assert list(Team.objects.get(name="engineering").members.all()) == []


def test_directory_login_never_takes_over_a_local_account(directory, make_user):
    make_user("dora", password="local secret 99")
    assert not user_of(log_in("dora", "dora-pass")).is_authenticated
    assert "already belongs" in AuditLogEntry.objects.get(action="refused").new_value
    assert user_of(log_in("dora", "local secret 99")).is_authenticated  # her own password


def test_deactivated_directory_account_loses_its_session(directory, make_user):
    make_user("someone")
    browser = log_in("dora", "dora-pass")
    assert user_of(browser).is_authenticated
    get_user_model().objects.filter(username="dora").update(is_active=False)
    assert not user_of(browser).is_authenticated
    assert not user_of(log_in("dora", "dora-pass")).is_authenticated


def test_password_form_stays_for_ldap_when_local_login_is_off(directory, make_user, settings):
    make_user("someone")
    settings.LOCAL_LOGIN = False
    assert 'name="password"' in Client().get("/accounts/login/").content.decode()
    assert user_of(log_in("dora", "dora-pass")).is_authenticated
    assert not user_of(log_in("someone", "correct horse 42")).is_authenticated

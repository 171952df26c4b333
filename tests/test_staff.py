"""Staff pages: permissions, the dashboard, CSV export, test connection, users, sign-up, login
throttling, key rotation, and the API key never showing anywhere."""

import csv
import datetime as dt
import io
import logging
import re
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from chat.models import ModelSetting, Provider, SiteSettings, UsageRecord, UserQuota
from tests.gateway_fixtures import free_port

pytestmark = pytest.mark.django_db

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def keyed(provider):
    provider.set_api_key(SECRET)
    provider.save()
    return provider


def staff_urls(provider) -> list[str]:
    return [
        "/admin/usage/",
        "/admin/usage/export.csv",
        "/admin/",
        "/admin/chat/provider/",
        f"/admin/chat/provider/{provider.pk}/change/",
        f"/admin/chat/provider/{provider.pk}/test-connection/",
        "/admin/chat/modelsetting/",
        "/admin/chat/sitesettings/",
        "/admin/chat/auditlogentry/",
        "/admin/chat/usagerecord/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
    ]


# -- permissions ----------------------------------------------------------------------------------


def test_a_member_gets_403_or_a_redirect_on_every_staff_page(client, user, provider):
    client.force_login(user)
    for url in staff_urls(provider):
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/"), url
    assert client.get("/admin/usage/").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, user, provider):
    for url in staff_urls(provider):
        response = client.get(url)
        assert response.status_code == 302, url
        assert "login" in response["Location"], url


def test_staff_can_open_every_staff_page(staff_client, provider):
    for url in staff_urls(provider):
        response = staff_client.get(url)
        assert response.status_code in (200, 302), url


def test_members_see_their_own_usage_but_not_the_dashboard_link(client, user):
    client.force_login(user)
    html = client.get("/").content.decode()
    assert 'href="/usage/">Usage</a>' in html
    assert "/admin/usage/" not in html
    assert client.get("/usage/").status_code == 200


# -- the dashboard --------------------------------------------------------------------------------


@pytest.fixture
def records(user, other_user, provider):
    now = timezone.now()
    rows = [
        UsageRecord(
            created_at=now - dt.timedelta(days=i % 10),
            user=user if i % 3 else other_user,
            provider=provider,
            provider_name=provider.name,
            model="gpt-a" if i % 2 else "gpt-b",
            api="responses",
            status="completed",
            input_tokens=100,
            output_tokens=50,
            total_tokens=150,
            cost=Decimal("0.01"),
        )
        for i in range(300)
    ]
    UsageRecord.objects.bulk_create(rows)
    return rows


def test_dashboard_shows_totals_tables_and_charts(staff_client, records, user):
    html = staff_client.get("/admin/usage/").content.decode()
    assert '<strong id="total-requests">300</strong>' in html
    assert '<strong id="total-tokens">45,000</strong>' in html
    assert '<strong id="total-cost">$3.00</strong>' in html
    assert "<caption>By user</caption>" in html and f'<th scope="row">{user.username}' in html
    assert "gpt-a · Demo" in html
    assert '<canvas id="chart-over-time"' in html
    assert 'src="/static/vendor/chart-4.6.1.umd.min.js"' in html  # served from static/, no CDN
    assert '<script id="usage-chart-data" type="application/json">' in html
    # Every script and stylesheet from our own origin (a random CSRF token may contain "cdn").
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)


def test_chart_library_and_script_are_served(staff_client):
    for path in ["/static/vendor/chart-4.6.1.umd.min.js", "/static/js/usage.js"]:
        response = staff_client.get(path)
        assert response.status_code == 200, path
        body = b"".join(response.streaming_content)
        assert len(body) > 1000 if "chart" in path else b"usage-chart-data" in body


def test_dashboard_filters_by_user_and_model(staff_client, records, user):
    response = staff_client.get("/admin/usage/", {"user": user.pk, "model": "gpt-a"})
    expected = sum(1 for i in range(300) if i % 3 and i % 2)
    assert f'<strong id="total-requests">{expected}</strong>' in response.content.decode()


def test_dashboard_groups_by_month_and_rejects_bad_ranges(staff_client, records):
    html = staff_client.get("/admin/usage/", {"granularity": "month"}).content.decode()
    assert '<th scope="col">Month</th>' in html
    bad = staff_client.get("/admin/usage/", {"start": "2026-05-01", "end": "2026-04-01"})
    assert "“From” must be on or before “To”." in bad.content.decode()


def test_csv_export_of_the_filtered_records(staff_client, records, user):
    response = staff_client.get("/admin/usage/export.csv", {"user": user.pk})
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == sum(1 for i in range(300) if i % 3)
    assert {row["user"] for row in rows} == {user.username}


# -- providers: test connection, and the key never shows ------------------------------------------


def test_test_connection_lists_the_models(staff_client, provider):
    response = staff_client.get(f"/admin/chat/provider/{provider.pk}/test-connection/", follow=True)
    html = response.content.decode()
    assert "Demo: Connected: the gateway offers 5 models: demo-chat, demo-reasoner" in html
    assert response.redirect_chain[-1][0] == f"/admin/chat/provider/{provider.pk}/change/"


def test_test_connection_explains_a_wrong_key_without_showing_it(staff_client, keyed, caplog):
    with caplog.at_level(logging.DEBUG):
        response = staff_client.get(
            f"/admin/chat/provider/{keyed.pk}/test-connection/", follow=True
        )
    html = response.content.decode()
    assert "Demo: Connection failed: The gateway refused the API key (401)" in html
    assert SECRET not in html and SECRET[-8:] not in html
    assert SECRET not in caplog.text


def test_test_connection_explains_an_unreachable_gateway(staff_client):
    port = free_port()
    down = Provider.objects.create(name="Down", base_url=f"http://127.0.0.1:{port}/v1")
    response = staff_client.get(f"/admin/chat/provider/{down.pk}/test-connection/", follow=True)
    html = response.content.decode()
    assert "Down: Connection failed:" in html and f"127.0.0.1:{port}" in html


def test_the_test_connection_action_on_the_list(staff_client, provider):
    response = staff_client.post(
        "/admin/chat/provider/",
        {"action": "test_connections", "_selected_action": [provider.pk]},
        follow=True,
    )
    assert "Connected: the gateway offers 5 models" in response.content.decode()


def test_import_models_creates_model_settings(staff_client, provider):
    staff_client.post(
        "/admin/chat/provider/",
        {"action": "import_models", "_selected_action": [provider.pk]},
    )
    assert set(ModelSetting.objects.values_list("model", flat=True)) == {
        "demo-chat",
        "demo-reasoner",
        "demo-text",
        "gpt-5.4",
        "gpt-5.4-mini",
    }


def test_the_key_never_appears_in_any_page(staff_client, keyed, user, records, caplog):
    with caplog.at_level(logging.DEBUG):
        staff_client.post(
            f"/admin/chat/provider/{keyed.pk}/change/",
            {
                "name": "Demo",
                "base_url": keyed.base_url,
                "default_api": "responses",
                "enabled": "on",
                "is_default": "on",
                "api_key": SECRET,
            },
        )
        pages = [*staff_urls(keyed), "/", "/usage/", f"/admin/chat/provider/{keyed.pk}/history/"]
        for url in pages:
            response = staff_client.get(url, follow=True)
            body = (
                b"".join(response.streaming_content) if response.streaming else response.content
            ).decode()
            assert SECRET not in body, url
            assert keyed.api_key_encrypted not in body, url
        refreshed = staff_client.post("/models/refresh/", {"model": ""}).content.decode()
        assert SECRET not in refreshed
    change_form = staff_client.get(f"/admin/chat/provider/{keyed.pk}/change/").content.decode()
    assert "sk-…cdef" in change_form  # shown masked
    assert 'name="api_key"' in change_form and 'type="password"' in change_form
    assert SECRET not in caplog.text


# -- users ----------------------------------------------------------------------------------------


def test_staff_create_a_member_with_a_quota(staff_client):
    response = staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "email": "newbie@example.com",
            "role": "member",
            "usable_password": "true",
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
            "quota-TOTAL_FORMS": "1",
            "quota-INITIAL_FORMS": "0",
            "quota-MIN_NUM_FORMS": "0",
            "quota-MAX_NUM_FORMS": "1",
            "quota-0-tokens_per_day": "5000",
        },
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(username="newbie")
    assert not user.is_staff and not user.is_superuser and user.is_active
    assert UserQuota.objects.get(user=user).tokens_per_day == 5000


def test_staff_make_an_admin_and_see_roles(staff_client, user):
    data = {
        "username": user.username,
        "email": user.email,
        "role": "admin",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
        "quota-TOTAL_FORMS": "0",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
    }
    response = staff_client.post(f"/admin/auth/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    user.refresh_from_db()
    assert user.is_staff and user.is_superuser
    listing = staff_client.get("/admin/auth/user/").content.decode()
    assert "Administrator" in listing and "Member" not in listing.split("<tbody>")[1]


def test_staff_cannot_demote_themselves(staff_client, staff):
    data = {
        "username": staff.username,
        "role": "member",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
        "quota-TOTAL_FORMS": "0",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
    }
    response = staff_client.post(f"/admin/auth/user/{staff.pk}/change/", data)
    assert "You cannot remove your own administrator role" in response.content.decode()
    staff.refresh_from_db()
    assert staff.is_staff


def test_deactivate_and_reset_password(staff_client, staff, user, client):
    staff_client.post(
        "/admin/auth/user/",
        {"action": "deactivate", "_selected_action": [user.pk, staff.pk]},
    )
    user.refresh_from_db()
    staff.refresh_from_db()
    assert not user.is_active and staff.is_active  # never yourself
    staff_client.post("/admin/auth/user/", {"action": "reactivate", "_selected_action": [user.pk]})
    response = staff_client.post(
        "/admin/auth/user/", {"action": "reset_passwords", "_selected_action": [user.pk]}
    )
    html = response.content.decode()
    assert "no-store" in response["Cache-Control"]
    temporary = html.split("<code>")[1].split("</code>")[0]
    assert len(temporary) >= 12
    user.refresh_from_db()
    assert user.is_active and user.check_password(temporary)
    assert not user.check_password("correct horse 42")


# -- sign-up and login throttling -----------------------------------------------------------------


def signup(client, email: str):
    return client.post(
        "/accounts/signup/",
        {
            "username": "joiner",
            "email": email,
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
        },
    )


def test_sign_up_is_limited_to_allowed_domains(client, staff):
    SiteSettings.objects.update_or_create(
        pk=1, defaults={"allow_signup": True, "allowed_email_domains": "example.com\nteam.org"}
    )
    response = signup(client, "joiner@elsewhere.net")
    assert "Sign-up is open to addresses at example.com, team.org." in response.content.decode()
    assert not get_user_model().objects.filter(username="joiner").exists()
    assert "This field is required." in signup(client, "").content.decode()
    assert signup(client, "joiner@Team.org").status_code == 302
    assert get_user_model().objects.filter(username="joiner").exists()


def test_sign_up_stays_off_by_default(client, staff):
    assert signup(client, "joiner@example.com").status_code == 404


def login(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_too_many_failed_logins_for_a_username_are_refused(client, user, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    for _ in range(3):
        assert login(client, "alice", "wrong").status_code == 200
    response = login(client, "alice", "correct horse 42")  # even the right password, for now
    assert response.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes." in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another IP does not help: the username is blocked.
    assert login(client, "alice", "correct horse 42", ip="10.0.0.2").status_code == 429


def test_too_many_failed_logins_from_one_ip_are_refused(client, make_user, settings):
    settings.LOGIN_FAILURES_PER_IP = 4
    make_user("bob")
    for name in ["a", "b", "c", "d"]:
        login(client, name, "guess")
    assert login(client, "bob", "correct horse 42").status_code == 429
    assert login(client, "bob", "correct horse 42", ip="10.9.9.9").status_code == 302


def test_a_successful_login_clears_the_usernames_failures(client, user, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    login(client, "alice", "wrong")
    login(client, "alice", "wrong")
    assert login(client, "alice", "correct horse 42").status_code == 302
    client.logout()
    login(client, "alice", "wrong")
    login(client, "alice", "wrong")
    assert login(client, "alice", "correct horse 42").status_code == 302


def test_the_admin_login_is_throttled_too(client, staff, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 2
    for _ in range(2):
        client.post("/admin/login/", {"username": "root", "password": "nope"})
    response = client.post("/admin/login/", {"username": "root", "password": "correct horse 42"})
    assert "Too many failed logins" in response.content.decode()


def test_the_client_ip_can_come_from_the_proxy_header(client, user, settings):
    settings.LOGIN_FAILURES_PER_IP = 2
    settings.LOGIN_FAILURES_PER_USERNAME = 100
    settings.LOGIN_CLIENT_IP_HEADER = "X-Forwarded-For"

    def attempt(forwarded: str):
        return client.post(
            "/accounts/login/",
            {"username": "x", "password": "y"},
            REMOTE_ADDR="10.0.0.254",
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    attempt("1.1.1.1, 203.0.113.5")
    attempt("2.2.2.2, 203.0.113.5")  # a forged first entry does not change the client
    assert attempt("203.0.113.5").status_code == 429
    assert attempt("203.0.113.6").status_code == 200  # a different client behind the proxy


# -- key rotation ---------------------------------------------------------------------------------


def test_rotate_encryption_key(settings, keyed, capsys):
    settings.ENCRYPTION_KEYS = ["old passphrase"]
    keyed.set_api_key(SECRET)
    keyed.save()
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, "old passphrase"]
    call_command("rotate_encryption_key", "--dry-run")
    assert "can be decrypted; nothing changed" in capsys.readouterr().out
    call_command("rotate_encryption_key")
    assert "Re-encrypted 1 API key(s)" in capsys.readouterr().out
    settings.ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert Provider.objects.get(pk=keyed.pk).api_key == SECRET


def test_rotation_refuses_when_a_key_cannot_be_read(settings, keyed):
    settings.ENCRYPTION_KEYS = ["lost passphrase"]
    keyed.set_api_key(SECRET)
    keyed.save()
    before = keyed.api_key_encrypted
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="No configured key can decrypt the API key of: Demo"):
        call_command("rotate_encryption_key")
    assert Provider.objects.get(pk=keyed.pk).api_key_encrypted == before


def test_generate_prints_a_usable_key(capsys):
    call_command("rotate_encryption_key", "--generate")
    Fernet(capsys.readouterr().out.strip().encode())  # a valid Fernet key


def test_model_default_parameters_are_checked_like_a_chats(staff_client, provider):
    from chat.services import providers

    setting = ModelSetting.objects.create(provider=provider, model="gpt-a")
    url = f"/admin/chat/modelsetting/{setting.pk}/change/"
    data = {
        "provider": provider.pk,
        "model": "gpt-a",
        "enabled": "on",
        "price_input": "0",
        "price_output": "0",
    }
    bad = staff_client.post(url, data | {"default_params": '{"temprature": 1}'})
    assert "Unknown parameter(s): temprature." in bad.content.decode()
    out_of_range = staff_client.post(url, data | {"default_params": '{"temperature": 7}'})
    assert "temperature:" in out_of_range.content.decode()
    good = staff_client.post(url, data | {"default_params": '{"temperature": 0.2}'})
    assert good.status_code == 302
    assert providers.model_defaults(provider, "gpt-a") == {"temperature": 0.2}
    assert providers.model_defaults(provider, "unknown") == {}

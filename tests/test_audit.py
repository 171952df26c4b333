"""The audit log: who changed what on providers, keys, models, settings and users; no secrets."""

import pytest
from django.core.management import call_command

from chat.models import AuditLogEntry, ModelSetting, Provider

pytestmark = pytest.mark.django_db

SECRET = "sk-live-0123456789abcdef"
OTHER_SECRET = "sk-live-zzzz9999yyyy8888"


def provider_form(**overrides) -> dict:
    data = {
        "name": "Gateway",
        "base_url": "https://gw.example/v1",
        "default_api": "responses",
        "enabled": "on",
        "api_key": "",
    }
    return data | overrides


def entries() -> list[tuple[str, str, str, str, str, str]]:
    return list(
        AuditLogEntry.objects.order_by("pk").values_list(
            "actor_name", "action", "object_repr", "field", "old_value", "new_value"
        )
    )


def assert_no_secret_anywhere() -> None:
    for row in AuditLogEntry.objects.values_list("object_repr", "field", "old_value", "new_value"):
        for value in row:
            assert SECRET not in value and OTHER_SECRET not in value
            assert "cdef" not in value and "8888" not in value  # not even the masked tail


def test_adding_a_provider_is_recorded_with_its_key_as_set(staff_client):
    response = staff_client.post("/admin/chat/provider/add/", provider_form(api_key=SECRET))
    assert response.status_code == 302
    log = entries()
    assert ("root", "created", "Gateway", "", "", "") in log
    assert ("root", "created", "Gateway", "Base url", "", "https://gw.example/v1") in log
    assert ("root", "changed", "Gateway", "API key", "not set", "set") in log
    assert_no_secret_anywhere()


def test_each_changed_field_and_key_replacement_is_recorded(staff_client):
    staff_client.post("/admin/chat/provider/add/", provider_form(api_key=SECRET))
    provider = Provider.objects.get()
    AuditLogEntry.objects.all().delete()
    staff_client.post(
        f"/admin/chat/provider/{provider.pk}/change/",
        provider_form(name="Main gateway", enabled="", api_key=OTHER_SECRET),
    )
    log = entries()
    assert ("root", "changed", "Main gateway", "Name", "Gateway", "Main gateway") in log
    assert ("root", "changed", "Main gateway", "Enabled", "True", "False") in log
    assert ("root", "changed", "Main gateway", "API key", "set", "replaced") in log
    assert len(log) == 3  # unchanged fields are not logged
    assert_no_secret_anywhere()


def test_removing_the_key_and_deleting_are_recorded(staff_client):
    staff_client.post("/admin/chat/provider/add/", provider_form(api_key=SECRET))
    provider = Provider.objects.get()
    staff_client.post(
        f"/admin/chat/provider/{provider.pk}/change/", provider_form(clear_api_key="on")
    )
    assert ("root", "changed", "Gateway", "API key", "set", "removed") in entries()
    staff_client.post(f"/admin/chat/provider/{provider.pk}/delete/", {"post": "yes"})
    assert not Provider.objects.exists()
    assert ("root", "deleted", "Gateway", "", "", "") in entries()


def test_an_unchanged_save_records_nothing(staff_client):
    staff_client.post("/admin/chat/provider/add/", provider_form(api_key=SECRET))
    provider = Provider.objects.get()
    AuditLogEntry.objects.all().delete()
    staff_client.post(f"/admin/chat/provider/{provider.pk}/change/", provider_form())
    assert entries() == []


def test_model_prices_and_site_settings_changes_are_recorded(staff_client, provider):
    setting = ModelSetting.objects.create(provider=provider, model="gpt-a")
    staff_client.post(
        f"/admin/chat/modelsetting/{setting.pk}/change/",
        {
            "provider": provider.pk,
            "model": "gpt-a",
            "enabled": "on",
            "display_name": "",
            "price_input": "2.5",
            "price_cached_input": "",
            "price_output": "10",
            "default_params": "{}",
        },
    )
    log = entries()
    assert ("root", "changed", "Demo · gpt-a", "Input price", "0.0000", "2.5") in log
    assert ("root", "changed", "Demo · gpt-a", "Output price", "0.0000", "10") in log
    staff_client.post(
        "/admin/chat/sitesettings/add/",
        {"allow_signup": "on", "allowed_email_domains": "", "default_tokens_per_day": "1000"},
    )
    assert ("root", "created", "Site settings", "Default tokens per day", "", "1000") in entries()


def test_role_and_quota_changes_are_recorded(staff_client, user):
    staff_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": user.username,
            "email": user.email,
            "role": "admin",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
            "quota-TOTAL_FORMS": "1",
            "quota-INITIAL_FORMS": "0",
            "quota-MIN_NUM_FORMS": "0",
            "quota-MAX_NUM_FORMS": "1",
            "quota-0-tokens_per_day": "777",
        },
    )
    log = entries()
    assert ("root", "changed", "alice", "Role", "member", "admin") in log
    assert ("root", "created", "Quota of alice", "Tokens per day", "", "777") in log


def test_key_rotation_is_recorded(settings, provider):
    settings.ENCRYPTION_KEYS = ["new passphrase", settings.SECRET_KEY]
    call_command("rotate_encryption_key")
    assert ("system", "re-encrypted", "Demo", "API key", "", "(secret, not recorded)") in entries()


def test_the_audit_log_is_read_only_and_hides_keys(staff_client):
    staff_client.post("/admin/chat/provider/add/", provider_form(api_key=SECRET))
    html = staff_client.get("/admin/chat/auditlogentry/").content.decode()
    assert "API key" in html and SECRET not in html
    assert staff_client.get("/admin/chat/auditlogentry/add/").status_code == 403
    entry = AuditLogEntry.objects.first()
    page = staff_client.get(f"/admin/chat/auditlogentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()

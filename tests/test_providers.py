"""Providers: keys encrypted at rest and never shown; the default provider; model lists."""

from unittest import mock

import pytest
from django.db import connection

from chat import crypto
from chat.models import Provider
from chat.services import providers

pytestmark = pytest.mark.django_db

SECRET = "sk-live-0123456789abcdef"


def test_api_key_is_encrypted_at_rest_and_masked():
    provider = Provider(name="Gateway", base_url="https://gw.example/v1")
    provider.set_api_key(SECRET)
    provider.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM chat_provider WHERE id = %s", [provider.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored
    assert Provider.objects.get(pk=provider.pk).api_key == SECRET
    assert provider.api_key_masked == "sk-…cdef"


def test_keys_rotate_old_key_still_decrypts(settings):
    settings.ENCRYPTION_KEYS = ["old passphrase"]
    token = crypto.encrypt(SECRET)
    settings.ENCRYPTION_KEYS = ["new passphrase", "old passphrase"]
    assert crypto.decrypt(token) == SECRET
    settings.ENCRYPTION_KEYS = ["new passphrase"]
    with pytest.raises(ValueError):
        crypto.decrypt(token)


def test_admin_never_renders_the_key(client, make_user):
    provider = Provider(name="Gateway", base_url="https://gw.example/v1")
    provider.set_api_key(SECRET)
    provider.save()
    client.force_login(make_user("root", staff=True))
    for url in ["/admin/chat/provider/", f"/admin/chat/provider/{provider.pk}/change/"]:
        html = client.get(url).content.decode()
        assert SECRET not in html
        assert provider.api_key_encrypted not in html
        assert "sk-…cdef" in html


def test_admin_keeps_the_key_when_the_field_is_left_empty(client, make_user):
    provider = Provider(name="Gateway", base_url="https://gw.example/v1")
    provider.set_api_key(SECRET)
    provider.save()
    client.force_login(make_user("root", staff=True))
    data = {
        "name": "Gateway 2",
        "base_url": "https://gw.example/v1",
        "default_api": "responses",
        "enabled": "on",
        "api_key": "",
    }
    assert client.post(f"/admin/chat/provider/{provider.pk}/change/", data).status_code == 302
    provider.refresh_from_db()
    assert provider.name == "Gateway 2" and provider.api_key == SECRET
    data["api_key"] = "sk-new-key-99998888"
    client.post(f"/admin/chat/provider/{provider.pk}/change/", data)
    provider.refresh_from_db()
    assert provider.api_key == "sk-new-key-99998888"


def test_default_provider_from_environment(settings):
    settings.OPENAI_BASE_URL = "https://gw.example/v1"
    settings.OPENAI_API_KEY = SECRET
    provider = providers.ensure_default_provider()
    assert provider.base_url == "https://gw.example/v1" and provider.api_key == SECRET


def test_default_provider_is_the_demo_gateway_without_configuration(settings):
    settings.OPENAI_BASE_URL = ""
    settings.DEMO_GATEWAY_ENABLED = True
    provider = providers.ensure_default_provider()
    assert provider.name == providers.DEMO_PROVIDER_NAME
    assert provider.base_url == settings.DEMO_GATEWAY_URL
    assert provider.api_key  # the mounted demo gateway refuses anonymous callers


@pytest.mark.django_db(transaction=True)
async def test_model_list_is_cached_until_refreshed(provider):
    first = await providers.models_of(provider)
    assert "demo-chat" in first.models and not first.error
    provider.set_api_key("sk-wrong-key-0000")
    assert (await providers.models_of(provider)).models == first.models  # from the cache
    refreshed = await providers.models_of(provider, refresh=True)
    assert refreshed.models == () and "401" in refreshed.error


@pytest.mark.django_db(transaction=True)
async def test_a_provider_that_is_down_is_reported_not_raised():
    down = Provider(name="Down", base_url="http://127.0.0.1:9/v1")
    await down.asave()
    result = await providers.models_of(down, refresh=True)
    assert result.models == ()
    assert "127.0.0.1:9" in result.error or "reach" in result.error.lower()


def test_two_workers_creating_the_default_provider_at_once_end_with_one(db, settings):
    """Several workers start on an empty database: the second insert loses, and uses the first."""
    from chat.services.providers import ensure_default_provider

    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "http://gw.example/v1", "sk-test-1234"
    first = ensure_default_provider()
    # The race: this worker looked before the other one's row existed.
    with mock.patch.object(Provider.objects, "exists", return_value=False):
        second = ensure_default_provider()
    assert second is not None and second.pk == first.pk
    assert Provider.objects.count() == 1

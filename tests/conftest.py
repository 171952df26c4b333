"""Shared fixtures: users, the demo gateway over real HTTP, and a provider pointing at it."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from chat.models import Provider, Thread

pytest_plugins = ["tests.gateway_fixtures", "tests.live_server"]

_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.STREAM_COALESCE_SECONDS = 0.01
    settings.DEMO_GATEWAY_ENABLED = False
    settings.SECURE_SSL_REDIRECT = False
    cache.clear()


@pytest.fixture
def make_user(db):
    def make(
        username: str | None = None, *, staff: bool = False, password: str = "correct horse 42"
    ):
        username = username or f"user{next(_numbers)}"
        user = get_user_model().objects.create_user(username, f"{username}@example.com", password)
        if staff:
            user.is_staff = user.is_superuser = True
            user.save()
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("mallory")


@pytest.fixture
def provider(db, demo_gateway_url, demo_api_key):
    provider = Provider(name="Demo", base_url=demo_gateway_url, is_default=True)
    provider.set_api_key(demo_api_key)
    provider.save()
    return provider


@pytest.fixture
def make_thread(provider):
    def make(owner, *, model: str = "demo-chat", title: str = "A chat") -> Thread:
        return Thread.objects.create(owner=owner, provider=provider, model=model, title=title)

    return make


@pytest.fixture
def staff(make_user):
    return make_user("root", staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client

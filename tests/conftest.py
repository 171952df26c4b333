"""Shared fixtures: users, the demo gateway over real HTTP, and a provider pointing at it."""

from __future__ import annotations

import itertools
import os

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.test.utils import override_settings

from chat import image_policy
from chat.models import Provider, Thread
from tests.support.static_files import collect_static_if_stale

pytest_plugins = [
    "tests.gateway_fixtures",
    "tests.api_site",
    "tests.mcp_fixtures",
    "tests.live_server",
    "tests.signin_fixtures",
    "tests.redis_server",
    "tests.workers",
    "tests.attachment_fixtures",
]

_numbers = itertools.count(1)


# With REDIS_URL (make test-scaleout), this test process gets its own key prefix in the shared
# Redis: test databases all number threads from 1, so group names would otherwise collide
# between runs side by side, and clearing the cache must not flush anyone else's keys.
REDIS_TEST_PREFIX = f"switchboard-test-{os.getpid()}."


def _redis_client():
    from django.core.cache import caches

    return caches["default"]._cache.get_client(write=True)


def _clear_cache() -> None:
    if django_settings.REDIS_URL:
        client = _redis_client()
        keys = list(client.scan_iter(match=f"{REDIS_TEST_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _redis_per_process():
    if not django_settings.REDIS_URL:
        yield
        return
    layers = {"default": dict(django_settings.CHANNEL_LAYERS["default"])}
    layers["default"]["CONFIG"] = layers["default"]["CONFIG"] | {"prefix": REDIS_TEST_PREFIX}
    caches = {"default": django_settings.CACHES["default"] | {"KEY_PREFIX": REDIS_TEST_PREFIX}}
    with override_settings(CHANNEL_LAYERS=layers, CACHES=caches):
        yield
        _clear_cache()  # the channel layer's leftovers too: they share the prefix


@pytest.fixture(scope="session", autouse=True)
def _static_files_collected():
    """Pages name hashed static files from STATIC_ROOT's manifest (whitenoise's manifest
    storage): the in-process test client and every Daphne a test starts read it."""
    collect_static_if_stale()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL, end the test database's other sessions before it is dropped: async tests
    leave connections open in executor threads (persistent connections), and PostgreSQL refuses
    to drop a database that is in use."""
    yield
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.STREAM_COALESCE_SECONDS = 0.01
    settings.DEMO_GATEWAY_ENABLED = False
    settings.AUTO_TITLES = False  # on in tests/test_titles.py (a background request otherwise)
    settings.SECURE_SSL_REDIRECT = False
    _clear_cache()
    image_policy.forget()  # a previous test's allowed image hosts were rolled back
    if django_settings.REDIS_URL:
        # A fresh Redis layer per test: each test has its own event loop, and a layer that
        # outlived one (a receive still pending when it closed) keeps a lock bound to it.
        from channels.layers import channel_layers

        channel_layers.backends.clear()


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
def cookie_of(db):
    """The session cookie header of a logged-in user, for websocket tests (a browser each, so
    several users stay logged in at once)."""

    @sync_to_async
    def cookie(user) -> tuple[bytes, bytes]:
        browser = Client()
        browser.force_login(user)
        return (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())

    return cookie


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client

"""Every page carries a strict Content-Security-Policy, and nothing in it needs an exception
(no inline script, style or event handler) (issue 11, finding 4)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import path

from chat.models import SiteSettings, Thread, Turn

pytestmark = pytest.mark.django_db

STRICT = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "connect-src": ["'self'", "ws://testserver"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
}
TAG = re.compile(r"<[a-zA-Z][^>]*>")
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*\btype=\"application/json\")", re.I)
INLINE_ATTRIBUTE = re.compile(r"\s(?:style|on[a-z]+|hx-on[:\w-]*)\s*=", re.I)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";"))}


def inline_code(html: str) -> list[str]:
    """Everything in a page the policy would refuse: inline scripts, <style>, style and on…
    attributes, hx-on, javascript: URLs."""
    found = INLINE_SCRIPT.findall(html) + re.findall(r"<style\b|javascript:", html, re.I)
    found += [tag for tag in TAG.findall(html) if INLINE_ATTRIBUTE.search(tag)]
    return found


def assert_strict(response, connect: str = "ws://testserver") -> None:
    if response.get("Content-Type", "").startswith("text/html"):
        assert policy(response) == STRICT | {"connect-src": ["'self'", connect]}
        assert inline_code(response.content.decode()) == []
    else:  # not a page: the same policy, without the page's socket
        assert policy(response) == STRICT | {"connect-src": ["'self'"]}


@pytest.fixture
def fresh_middleware(settings):
    # FirstRunMiddleware remembers that accounts exist; rebuild the stack for every test.
    settings.MIDDLEWARE = list(settings.MIDDLEWARE)


@pytest.fixture
def thread(staff):
    thread = Thread.objects.create(owner=staff, title="Policies", model="demo-chat")
    thread.current_turn = Turn.objects.create(
        thread=thread,
        author=staff,
        user_text="Show me",
        output_text="| a | b |\n|:-|-:|\n| 1 | 2 |\n\n```python\nx = 1\n```\n\n"
        "![remote](https://elsewhere.example/a.png)",
        status=Turn.Status.COMPLETED,
        model="demo-chat",
    )
    thread.save(update_fields=["current_turn"])
    return thread


def test_the_first_run_setup_page(client, fresh_middleware):
    response = client.get("/setup/")
    assert response.status_code == 200
    assert_strict(response)


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/login/",
        "/admin/login/",
        "/accounts/password_reset/",
        "/static/css/app.css",
        "/jsi18n/",
    ],
)
def test_pages_before_logging_in(client, fresh_middleware, user, url):
    response = client.get(url)
    assert response.status_code == 200
    assert_strict(response)


PAGES = [
    "/",
    "/t/{thread}/",
    "/t/{thread}/settings/",
    "/t/{thread}/sharing/",
    "/t/{thread}/earlier/?before={turn}",
    "/tools/",
    "/prompts/",
    "/import/",
    "/t/{thread}/links/",
    "/search/?q=policies",
    "/archived/",
    "/t/{thread}/menu/",
    "/usage/",
    "/accounts/password_change/",
    "/accounts/password_change/done/",
    "/admin/usage/",
    "/admin/",
    "/admin/chat/thread/",
    "/admin/chat/thread/{thread}/change/",
    "/admin/chat/sitesettings/1/change/",
    "/admin/auth/user/add/",
    "/admin/chat/team/add/",
    "/admin/chat/auditlogentry/",
    "/account/",
    "/admin/chat/announcement/add/",
    "/admin/usage/teams/",
    "/admin/audit-log/",
    "/admin/chat/provider/add/",
    "/admin/chat/budgetalert/",
    "/admin/chat/mcpserver/add/",
    "/admin/chat/mcpcall/",
    "/account/api-keys/",
    "/admin/chat/apikey/",
    "/admin/chat/apiaccess/",
]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_of_a_staff_member(staff_client, thread, url):
    SiteSettings.load()
    response = staff_client.get(url.format(thread=thread.pk, turn=thread.current_turn_id))
    assert response.status_code == 200, url
    assert_strict(response)


def test_error_pages(staff_client, settings):
    settings.DEBUG = False
    response = staff_client.get("/no-such-page/")
    assert response.status_code == 404
    assert_strict(response)
    response = staff_client.get("/t/999999/")
    assert response.status_code == 404
    assert_strict(response)


def broken_view(request):
    raise RuntimeError("a bug")


urlpatterns = [path("broken/", broken_view)]  # this module is the URLconf of the 500 test


def test_the_server_error_page(staff, settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    browser = Client(raise_request_exception=False)
    browser.force_login(staff)
    response = browser.get("/broken/")
    assert response.status_code == 500
    assert_strict(response)


def test_the_csrf_failure_page_has_no_inline_style(user):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/accounts/login/", {"username": "alice", "password": "x"})
    assert response.status_code == 403
    assert "Reload the page and try again" in response.content.decode()
    assert_strict(response)


def test_over_https_the_websocket_origin_is_wss(staff_client, settings):
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    response = staff_client.get("/", secure=True, HTTP_HOST="chat.example.org")
    assert response.status_code == 200
    assert_strict(response, connect="wss://chat.example.org")


def test_allowed_image_hosts_join_img_src(staff_client):
    SiteSettings.objects.update_or_create(
        pk=1, defaults={"image_hosts": "images.example.com\n*.cdn.example.org"}
    )
    response = staff_client.get("/")
    assert policy(response)["img-src"] == [
        "'self'",
        "data:",
        "blob:",
        "*.cdn.example.org",
        "images.example.com",
    ]

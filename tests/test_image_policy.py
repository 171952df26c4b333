"""Staff choose the hosts whose images load by themselves; every other remote image in a
message (answers and the user's own messages) waits for a click (issue 11, finding 3)."""

from __future__ import annotations

import asyncio
import re

import pytest

from chat import image_policy
from chat.image_policy import ImagePolicy, parse_image_hosts
from chat.markdown import render_markdown
from chat.models import SiteSettings, Thread, Turn

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/chat/sitesettings/1/change/"


def site_settings_form(**changes) -> dict:
    form = {
        "allow_signup": "",
        "allowed_email_domains": "",
        "default_tokens_per_day": "",
        "default_tokens_per_month": "",
        "default_cost_per_month": "",
        "image_hosts": "",
    }
    return form | changes


def test_host_entries_are_normalised():
    text = " Images.Example.com,\n*.CDN.example.org \n\nbücher.example:8443 "
    assert parse_image_hosts(text) == [
        "images.example.com",
        "*.cdn.example.org",
        "xn--bcher-kva.example:8443",
    ]
    assert parse_image_hosts("") == []


@pytest.mark.parametrize(
    "entry",
    [
        "https://images.example.com",
        "images.example.com/path",
        "*",
        "*.com",
        "host:99999",
        "exa!mple",
        "under_score.example",
        "[::1]",
    ],
)
def test_an_entry_that_is_not_a_host_is_refused_by_name(entry):
    with pytest.raises(ValueError) as refused:
        parse_image_hosts(f"ok.example.com\n{entry}")
    message = str(refused.value)
    assert "Not a host name" in message and "images.example.com" in message
    assert "ok.example.com" not in message  # only the bad entries are named


def test_staff_allow_a_host_in_the_admin_and_its_images_load_directly(staff_client):
    SiteSettings.load()
    text = "![logo](https://images.example.com/logo.png)"
    assert "Load image from images.example.com" in render_markdown(text)

    response = staff_client.post(
        CHANGE_URL, site_settings_form(image_hosts="Images.Example.com\nhttps://bad.example/x")
    )
    assert response.status_code == 200  # the form again, with the error, nothing saved
    assert "Not a host name: “https://bad.example/x”" in response.content.decode()
    assert SiteSettings.load().image_hosts == ""

    response = staff_client.post(CHANGE_URL, site_settings_form(image_hosts="Images.Example.com"))
    assert response.status_code == 302
    assert SiteSettings.load().image_hosts == "images.example.com"
    # The process that saved it uses it at once (others within a few seconds).
    assert render_markdown(text) == (
        '<p><img src="https://images.example.com/logo.png" alt="logo"></p>\n'
    )


def test_the_policy_is_cached_and_reloaded_after_a_while(monkeypatch, django_assert_num_queries):
    SiteSettings.objects.update_or_create(pk=1, defaults={"image_hosts": "a.example"})
    image_policy.forget()
    with django_assert_num_queries(1):
        for _ in range(5):
            assert image_policy.current() == ImagePolicy(frozenset({"a.example"}))
    SiteSettings.objects.filter(pk=1).update(image_hosts="b.example")  # another worker saved
    clock = image_policy.time.monotonic() + image_policy._RELOAD_SECONDS + 1
    monkeypatch.setattr(image_policy.time, "monotonic", lambda: clock)
    assert image_policy.current() == ImagePolicy(frozenset({"b.example"}))


def test_inside_the_event_loop_the_policy_never_waits_for_the_database(
    django_assert_num_queries,
):
    SiteSettings.objects.update_or_create(pk=1, defaults={"image_hosts": "a.example"})
    image_policy.current()
    image_policy._loaded = (0.0, image_policy._loaded[1])  # expired

    async def streaming_flush() -> ImagePolicy:
        return image_policy.current()

    with django_assert_num_queries(0):
        assert asyncio.run(streaming_flush()) == ImagePolicy(frozenset({"a.example"}))


def test_remote_images_in_a_users_message_and_the_answer_wait_for_a_click(logged_in_client, user):
    thread = Thread.objects.create(owner=user, title="Images", model="demo-chat")
    thread.current_turn = Turn.objects.create(
        thread=thread,
        author=user,
        user_text="What is in ![my photo](https://photos.example/me.jpg)?",
        output_text="It is ![a cat](https://cdn.attacker.example/cat.png?leak=1).",
        status=Turn.Status.COMPLETED,
        model="demo-chat",
    )
    thread.save(update_fields=["current_turn"])
    html = logged_in_client.get(f"/t/{thread.pk}/").content.decode()
    assert not re.search(r"<img[^>]*src=\"https?://", html)
    assert "Load image from photos.example: my photo" in html
    assert "Load image from cdn.attacker.example: a cat" in html


def test_the_image_page_may_load_only_that_one_image(logged_in_client):
    response = logged_in_client.get(
        "/image/", {"src": "https://photos.example:8443/me.jpg?size=2", "alt": "my <photo>"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        '<img src="https://photos.example:8443/me.jpg?size=2" alt="my &lt;photo&gt;" '
        'referrerpolicy="no-referrer">'
    ) in html
    assert response["Content-Security-Policy"] == (
        "default-src 'none'; img-src https://photos.example:8443; style-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # framed by our chat pages only
    assert response["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    "src",
    [
        "",
        "javascript:alert(1)",
        "/static/favicon.svg",
        "ftp://files.example/a.png",
        "data:image/png;base64,AAAA",
        "https://[::1]/a.png",
        "https://a.example/" + "x" * 9000,
    ],
)
def test_the_image_page_refuses_anything_but_a_remote_http_image(logged_in_client, src):
    response = logged_in_client.get("/image/", {"src": src})
    assert response.status_code == 400
    assert b"<img" not in response.content


def test_the_image_page_needs_a_login(client, user):
    response = client.get("/image/", {"src": "https://photos.example/me.jpg"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

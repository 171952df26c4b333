"""Announcements: staff banners on every page, live on open sockets, dismissible per user."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.models import Announcement
from chat.services import announcements
from tests.test_csp import inline_code
from tests.ws import ORIGIN, receive_until, socket


def _page(client: Client) -> str:
    return client.get(reverse("my-usage")).content.decode()


def test_current_banners_show_on_every_page_until_dismissed(client, user, other_user, make_thread):
    now = timezone.now()
    shown = Announcement.objects.create(message="Maintenance <b>tonight</b>", level="warning")
    Announcement.objects.create(message="Later news", starts_at=now + dt.timedelta(hours=1))
    Announcement.objects.create(message="Old news", ends_at=now - dt.timedelta(minutes=1))
    client.force_login(user)
    thread = make_thread(user)
    for url in (reverse("my-usage"), reverse("chat:thread", args=[thread.pk]), "/account/"):
        page = client.get(url).content.decode()
        assert "Maintenance &lt;b&gt;tonight&lt;/b&gt;" in page, url
        assert "Later news" not in page and "Old news" not in page
    assert 'class="announcement announcement-warning" role="alert"' in _page(client)
    assert inline_code(_page(client)) == []  # the strict CSP allows the banner as it is

    response = client.post(
        reverse("dismiss-announcement", args=[shown.pk]), headers={"hx-request": "true"}
    )
    assert response.status_code == 200
    assert "Maintenance" not in response.content.decode()
    assert "Maintenance" not in _page(client)  # remembered on the server
    other = Client()
    other.force_login(other_user)
    assert "Maintenance" in _page(other)  # only for the one who dismissed it


def test_dismissing_without_javascript_goes_back(client, user):
    banner = Announcement.objects.create(message="Hello all")
    client.force_login(user)
    response = client.post(
        reverse("dismiss-announcement", args=[banner.pk]), headers={"referer": "/usage/"}
    )
    assert response.status_code == 302 and response["Location"] == "/usage/"
    evil = client.post(
        reverse("dismiss-announcement", args=[banner.pk]),
        headers={"referer": "https://evil.example/"},
    )
    assert evil["Location"] == "/"
    assert client.post(reverse("dismiss-announcement", args=[999999])).status_code == 404


def test_signed_out_pages_show_no_banner(client, db):
    Announcement.objects.create(message="Members only")
    assert "Members only" not in client.get(reverse("login")).content.decode()


def test_an_end_before_the_start_is_refused(staff_client):
    response = staff_client.post(
        "/admin/chat/announcement/add/",
        {
            "message": "Backwards",
            "level": "info",
            "starts_at_0": "2026-12-02",
            "starts_at_1": "10:00",
            "ends_at_0": "2026-12-01",
            "ends_at_1": "10:00",
        },
    )
    assert response.status_code == 200
    assert "The end must come after the start." in response.content.decode()
    assert not Announcement.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_a_posted_banner_reaches_open_sockets_at_once(
    staff, user, make_thread, cookie_of
):
    thread = await sync_to_async(make_thread)(user)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    admin = Client()
    await sync_to_async(admin.force_login)(staff)
    response = await sync_to_async(admin.post)(
        "/admin/chat/announcement/add/", {"message": "Upgrade at 18:00", "level": "info"}
    )
    assert response.status_code == 302
    received = await receive_until(ws, "Upgrade at 18:00")
    assert 'hx-swap-oob="true" id="announcements"' in received[-1]
    banner = await Announcement.objects.aget()
    # Deleting it takes it off the page as well.
    response = await sync_to_async(admin.post)(
        f"/admin/chat/announcement/{banner.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    received = await receive_until(ws, 'id="announcements"')
    assert "Upgrade at 18:00" not in received[-1]
    await ws.disconnect()


def test_oob_fragment_replaces_the_page_area(user, db):
    Announcement.objects.create(message="Hi")
    html = announcements.render_for(user, swap_oob=True)
    assert html.startswith('<div hx-swap-oob="true" id="announcements"')

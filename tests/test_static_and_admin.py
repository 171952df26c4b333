"""Static files under hashed, precompressed names, and what the admin offers (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from chat.models import Thread, Turn

pytestmark = pytest.mark.django_db


def test_pages_name_hashed_static_files_with_compressed_copies(logged_in_client, provider):
    html = logged_in_client.get("/").content.decode()
    app_js = re.search(r'src="/static/(js/app\.[0-9a-f]{12}\.js)"', html)
    assert app_js, "the chat page names app.js under its content hash"
    collected = Path(settings.STATIC_ROOT) / app_js.group(1)
    source = Path(settings.BASE_DIR) / "static/js/app.js"
    assert collected.read_bytes() == source.read_bytes()
    assert collected.with_name(collected.name + ".gz").exists()
    assert collected.with_name(collected.name + ".br").exists()
    assert re.search(r'href="/static/css/app\.[0-9a-f]{12}\.css"', html)


def test_admin_says_switchboard(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert "Switchboard administration" in html
    assert "Django administration" not in html


@pytest.mark.parametrize("model", ["thread", "turn"])
def test_admin_offers_no_add_for_threads_and_turns(staff_client, user, provider, model):
    thread = Thread.objects.create(owner=user, title="Trip")
    Turn.objects.create(thread=thread, user_text="hello")
    listing = staff_client.get(f"/admin/chat/{model}/").content.decode()
    assert listing.count("<tr") > 1  # the row is listed
    assert f"/admin/chat/{model}/add/" not in listing
    assert staff_client.get(f"/admin/chat/{model}/add/").status_code == 403
    index = staff_client.get("/admin/").content.decode()
    assert f"/admin/chat/{model}/" in index and f"/admin/chat/{model}/add/" not in index

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
    # The app's own scripts are served minified (project/static_storage.py): same code, no
    # comments or indentation.
    served, written = collected.read_text(), source.read_text()
    assert len(served) < 0.8 * len(written)
    assert "function nearBottom(" in served and "function nearBottom(" in written
    assert "\n  " not in served and "// " not in served
    assert collected.with_name(collected.name + ".gz").exists()
    assert collected.with_name(collected.name + ".br").exists()
    assert re.search(r'href="/static/css/app\.[0-9a-f]{12}\.css"', html)


def test_vendored_libraries_keep_their_bytes(logged_in_client, provider):
    html = logged_in_client.get("/").content.decode()
    htmx = re.search(r'src="/static/(vendor/htmx-[0-9.]+\.min\.[0-9a-f]{12}\.js)"', html)
    assert htmx, "the chat page names htmx under its content hash"
    source = Path(settings.BASE_DIR) / "static" / re.sub(r"\.[0-9a-f]{12}\.js$", ".js", htmx[1])
    assert (Path(settings.STATIC_ROOT) / htmx[1]).read_bytes() == source.read_bytes()


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


def test_only_the_built_in_demo_gateway_counts_as_demo(provider, settings):
    from chat.models import Provider
    from chat.services.providers import is_builtin_demo

    assert not is_builtin_demo(provider)  # a gateway of its own, even if it is a test double
    settings.DEMO_GATEWAY_URL = "http://127.0.0.1:8000/demo/v1"
    mounted = Provider(name="Demo", base_url="http://chat.example.org:8443/demo/v1/")
    assert is_builtin_demo(mounted)  # the mounted one, on whatever host it was reached
    assert not is_builtin_demo(Provider(name="Real", base_url="https://gateway.example/v1"))

"""A person makes an API key in the browser, uses it from a script, then revokes it."""

import os
import subprocess
import sys

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS, ROOT

pytestmark = pytest.mark.browser

PASSWORD = "a long passphrase 7"


def make_account(data_dir) -> None:
    code = (
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('ann', None, '{PASSWORD}')"
    )
    env = os.environ | {
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True
    )


def test_create_use_and_revoke_a_key(live_app, browser_page: Page, tmp_path):
    make_account(tmp_path)
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_app + "/accounts/login/")
    page.get_by_label("Username").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="API keys").click()

    page.get_by_label("Name").fill("notebook")
    page.get_by_label("Expires after (days)").fill("30")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-api-key").inner_text()
    assert key.startswith("sb-")
    page.screenshot(path=str(ARTIFACTS / "api-keys-created.png"), full_page=True)

    api = openai.OpenAI(base_url=live_app + "/api/v1", api_key=key, max_retries=0)
    assert "demo-chat" in [m.id for m in api.models.list()]

    page.goto(live_app + "/account/api-keys/")  # shown once: only its prefix now
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    expect(page.locator("table.api-keys")).to_contain_text(key[:10])
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("table.api-keys")).to_contain_text("revoked")
    page.screenshot(path=str(ARTIFACTS / "api-keys-revoked.png"), full_page=True)
    with pytest.raises(openai.AuthenticationError):
        api.models.list()
    assert errors == []

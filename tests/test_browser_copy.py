"""Issue 18, item 6: Copy on a plain-http intranet. 127.0.0.1 counts as a secure context in
Chromium (navigator.clipboard exists there), so the app is reached as http://switchboard.test
(mapped to 127.0.0.1 by Chromium's resolver): not secure, no navigator.clipboard, the real
fallback (a selection + execCommand) runs. What it copied is read back from a secure page."""

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect, sync_playwright

from devtools.launch import CHROMIUM, CHROMIUM_ARGS
from tests.live_server import ARTIFACTS
from tests.test_browser_composer import start_chat

pytestmark = pytest.mark.browser

HOST = "switchboard.test"


@pytest.mark.live_env(DJANGO_ALLOWED_HOSTS=f"127.0.0.1,{HOST}")
def test_copy_works_over_plain_http_and_says_so_only_when_it_did(live_app, tmp_path):
    plain = f"http://{HOST}:{urlparse(live_app).port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(15_000)
        start_chat(page, plain, tmp_path, "Copy me over plain http")
        assert page.evaluate("window.isSecureContext") is False
        assert page.evaluate("navigator.clipboard === undefined")
        expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)

        # By its class: its accessible name changes to "Copied".
        copy = page.locator(".turn-meta button.copy")
        expect(copy).to_have_text("Copy")
        copy.click()
        expect(copy).to_have_text("Copied")
        expect(page.locator("#announcer")).to_have_text("Copied to the clipboard.")
        page.screenshot(path=ARTIFACTS / "copy-plain-http.png")

        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app)
        reader = context.new_page()
        reader.goto(live_app + "/accounts/login/")
        reader.bring_to_front()
        copied = reader.evaluate("navigator.clipboard.readText()")
        assert "Echo: Copy me over plain http" in copied
        assert "Copied" not in copied  # the answer's text, not the page's buttons

        # When the browser refuses the copy too, the button says so instead of "Copied".
        page.bring_to_front()
        page.add_init_script("document.execCommand = function () { return false; };")
        page.reload()
        copy.click()
        expect(copy).to_have_text("Copy failed")
        expect(page.locator("#announcer")).to_contain_text("Copy failed")
        context.close()
        browser.close()

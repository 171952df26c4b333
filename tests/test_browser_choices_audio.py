"""Issue 13 in a real browser: with n = 2 and spoken answers set in the chat's settings, the
answer shows the 1/2 switcher and a player; switching shows the other choice, with its own
player, which loads the stored WAV through the attachment view."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.test_browser_branches_tools import create_admin, send

pytestmark = pytest.mark.browser


def test_two_spoken_choices_are_switchable(live_app, browser_page: Page):
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    create_admin(page, live_app)
    send(page, "Hello #chunks=5")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)

    # The page's socket first: when it opens, the server brings the page up to date.
    expect(page.locator("#conversation")).to_have_attribute("data-socket", "open")
    # htmx wires the panel's controls when the swap settles: change the API only after that.
    page.evaluate(
        "() => { window.__settled = false; document.body.addEventListener("
        "'htmx:afterSettle', () => { window.__settled = true; }, {once: true}); }"
    )
    page.get_by_role("button", name="Settings").click()
    page.wait_for_function("() => window.__settled")
    page.get_by_label("API", exact=True).select_option("chat")
    page.get_by_label("Number of answers").fill("2")
    page.get_by_label("Answer as").select_option("text_audio")
    page.get_by_label("Voice", exact=True).select_option("alloy")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    page.get_by_role("button", name="Close settings").click()

    send(page, "Tell me twice")
    second = page.locator("article.turn").nth(1)
    expect(second).to_have_attribute("data-status", "completed")
    expect(second.locator(".branch-position")).to_have_text("1/2")
    expect(second).to_contain_text("Choice 1 of 2.")
    expect(second.get_by_label("Spoken answer")).to_have_count(1)
    second.get_by_label("Spoken answer").scroll_into_view_if_needed()
    # The player loads: its source is the thread's stored audio, and Chromium reads the WAV's
    # length (the demo gateway's answer is 0.4 s).
    audio = second.locator("audio")
    expect(audio).to_have_attribute("src", re.compile(r"/files/[0-9a-f-]{36}/$"))
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())
    assert 0.2 < audio.evaluate("a => a.duration") < 2
    page.screenshot(path=ARTIFACTS / "choices-1-of-2.png")

    second.get_by_role("button", name="Next version").click()
    second = page.locator("article.turn").nth(1)
    expect(second.locator(".branch-position")).to_have_text("2/2")
    expect(second).to_contain_text("Choice 2 of 2.")
    expect(second.get_by_label("Spoken answer")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "choices-2-of-2.png")
    # Switching swaps the turns in by htmx: no CSP violation either (attributesToSettle).
    assert errors == []

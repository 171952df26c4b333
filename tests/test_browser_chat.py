"""A person's first session, in Debian's Chromium against a live Daphne server."""

import time

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS

pytestmark = pytest.mark.browser


def answer_lengths_while_streaming(page: Page, selector: str, seconds: float) -> list[int]:
    """Sample how much answer text is visible, to see it arrive in pieces."""
    seen: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(len(page.locator(selector).inner_text()))
        if page.locator("article.turn[data-status='completed']").count():
            break
        time.sleep(0.05)
    return seen


@pytest.fixture
def two_turns_a_page(monkeypatch):
    """The live app (started after this) shows two turns a page, so paging shows early."""
    monkeypatch.setenv("HISTORY_PAGE_TURNS", "2")


def test_first_session(two_turns_a_page, live_app, browser_page: Page):
    page = browser_page
    page.goto(live_app)

    # An empty install asks for the first account.
    expect(page.get_by_role("heading", name="Create the first account")).to_be_visible()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("a long passphrase 7")
    page.get_by_label("Password confirmation").fill("a long passphrase 7")
    page.get_by_role("button", name="Create administrator account").click()

    # Log out and in again, as a returning user.
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("a long passphrase 7")
    page.get_by_role("button", name="Log in").click()

    page.screenshot(path=ARTIFACTS / "after-login.png")
    # Pick a model, send with Enter; the answer streams in pieces.
    model = page.get_by_label("Model", exact=True)
    expect(model).to_be_visible()
    model.select_option(label="demo-chat")
    page.get_by_label("Message", exact=True).fill("Hello from the browser #chunks=120 #delay=20")
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    lengths = answer_lengths_while_streaming(page, "article.turn .answer", 15)
    growing = sorted({n for n in lengths if n > 0})
    assert len(growing) >= 3, f"the answer did not arrive in pieces: {lengths}"
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "chat-first-answer.png", full_page=True)
    expect(page.locator("article.turn .answer table")).to_be_visible()  # markdown rendered
    expect(page.locator(".turn-meta").first).to_contain_text("tokens")

    # A follow-up continues the conversation (previous_response_id on the server).
    page.get_by_label("Message", exact=True).fill("And a follow-up")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(page.locator("article.turn").nth(1)).to_contain_text("turn 2 of the conversation")

    # Reload: the history is still there, and in the sidebar.
    page.reload()
    expect(page.locator("article.turn")).to_have_count(2)
    expect(page.get_by_role("navigation", name="Chats")).to_contain_text("Hello from the browser")

    # Stop a long answer: the partial text stays, marked stopped.
    page.get_by_label("Message", exact=True).fill("A very long answer #chunks=3000 #delay=20")
    page.get_by_label("Message", exact=True).press("Enter")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(page.locator("article.turn").nth(2).locator(".answer")).not_to_be_empty()
    time.sleep(0.5)
    stop.click()
    stopped = page.locator("article.turn[data-status='cancelled']")
    expect(stopped).to_have_count(1)
    expect(stopped).to_contain_text("Stopped.")
    assert len(stopped.locator(".answer").text_content()) > 20
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "chat-stopped.png", full_page=True)

    # A longer history shows its newest turns (two a page here); the earlier ones load in place.
    page.reload()
    expect(page.locator("article.turn")).to_have_count(2)
    page.get_by_role("button", name="Show earlier messages").click()
    expect(page.locator("article.turn")).to_have_count(3)
    expect(page.locator("article.turn").first).to_contain_text("Hello from the browser")
    expect(page.get_by_role("button", name="Show earlier messages")).to_have_count(0)

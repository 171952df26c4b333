"""Issue 11, findings 14 (with 2 and 15) in real browsers: a chat with a tool-call turn logs no
console error on the owner's or a viewer's page; when the owner stops sharing, the viewer's open
page is emptied at once and says why; logging out closes the other tabs' sockets with the reason
shown; a refused first message creates no chat and keeps its text."""

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.live_server import ARTIFACTS
from tests.test_browser_team import log_in, make_accounts

pytestmark = pytest.mark.browser


def collect_console_errors(page: Page) -> list[str]:
    """Every console error and uncaught exception of the page, as text."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def define_tool(page: Page) -> None:
    page.get_by_role("link", name="Tools").click()
    page.get_by_label("Name").fill("get_weather")
    page.get_by_label("Parameters (JSON Schema)").fill(
        '{"type": "object", "properties": {"city": {"type": "string"}}}'
    )
    page.get_by_role("button", name="Save tool").click()
    expect(page.get_by_role("list", name="Tools")).to_contain_text("get_weather")
    page.get_by_role("link", name="Back to chat").click()


@pytest.fixture
def short_messages(monkeypatch):
    """The live app (started after this) takes messages of up to 200 characters."""
    monkeypatch.setenv("MAX_MESSAGE_CHARS", "200")


def test_tool_call_chat_has_no_console_errors_and_revoked_viewer_page_is_emptied(
    short_messages, live_app, browser_page: Page, tmp_path
):
    make_accounts(tmp_path)
    alice = browser_page
    bob = alice.context.browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    bob.set_default_timeout(15_000)
    alice_errors, bob_errors = collect_console_errors(alice), collect_console_errors(bob)

    # Alice starts a chat that offers a tool, and shares it read only with Bob.
    log_in(alice, live_app, "alice")
    define_tool(alice)
    # A refused first message (finding 15): no chat is created and the text stays in the box.
    too_long = "Plans for the trip, " * 11
    send(alice, too_long)
    expect(alice.locator("#composer-error")).to_contain_text("That message is too long")
    expect(alice.get_by_label("Message", exact=True)).to_have_value(too_long)
    expect(alice.get_by_role("list", name="Your chats")).to_have_text("No chats yet.")
    send(alice, "Plans for the trip #chunks=5")
    alice.wait_for_url("**/t/*/")
    expect(alice.locator("article.turn[data-status='completed']")).to_have_count(1)
    alice.get_by_role("button", name="Settings").click()
    alice.get_by_label("get_weather").check()
    alice.get_by_role("button", name="Save settings").click()
    expect(alice.get_by_text("Settings saved.")).to_be_visible()
    alice.get_by_role("button", name="Close settings").click()
    alice.get_by_role("button", name="Share").click()
    alice.get_by_label("Username").fill("bob")
    alice.get_by_label("Access", exact=True).select_option(label="Read only")
    alice.get_by_role("button", name="Share", exact=True).last.click()
    expect(alice.locator(".sharing")).to_contain_text("Shared with bob.")

    log_in(bob, live_app, "bob")
    bob.get_by_role("list", name="Shared with me").get_by_role("link").first.click()
    expect(bob.locator(".read-only-note")).to_contain_text("alice shared this chat with you")
    expect(bob.locator("#presence")).to_contain_text("alice")

    # A tool-call turn: the model calls the tool, Alice answers, the answer streams on both pages.
    send(alice, "Weather in town? #call=get_weather #chunks=60")
    card = alice.get_by_role("region", name="Tool call get_weather")
    expect(card).to_contain_text("waiting for your answer")
    expect(bob.get_by_role("region", name="Tool call get_weather")).to_be_visible()
    card.get_by_label("Result of get_weather").fill("Sunny and 21 degrees")
    card.get_by_role("button", name="Send result").click()
    for page in (alice, bob):
        expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
        expect(page.locator("article.turn").nth(1)).to_contain_text("Sunny and 21 degrees")
    # A reload of the chat with the tool-call turn shows it whole, again without an error.
    bob.reload()
    expect(bob.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(bob.locator("#conversation")).to_have_attribute("data-socket", "open")
    assert alice_errors == [], alice_errors
    assert bob_errors == [], bob_errors

    # Alice stops sharing: Bob's page loses the chat at once and says why.
    alice.get_by_role("button", name="Stop sharing with bob").click()
    expect(alice.locator(".sharing")).to_contain_text("Only you can see this chat.")
    expect(bob.locator("#turns")).to_contain_text("This chat is no longer shared with you.")
    expect(bob.get_by_role("alert")).to_contain_text("no longer shared with you")
    expect(bob.locator("article.turn")).to_have_count(0)
    expect(bob.locator("body")).not_to_contain_text("Sunny and 21 degrees")
    expect(bob.locator("body")).not_to_contain_text("Weather in town")
    expect(bob.locator(".read-only-note")).to_have_count(0)
    expect(bob.locator("#presence")).to_have_count(0)
    expect(bob.locator("body")).not_to_contain_text("Plans for the trip")  # title: header, sidebar
    expect(bob.get_by_role("list", name="Shared with me")).to_have_count(0)
    expect(bob).to_have_title("Switchboard")
    expect(bob.locator("#conversation")).to_have_attribute("data-socket", "closed")
    expect(alice.locator("#presence")).not_to_contain_text("bob")
    bob.screenshot(path=ARTIFACTS / "session-bob-revoked.png", full_page=True)
    assert bob_errors == [], bob_errors

    # Logging out in one tab closes Alice's other tab's socket with the reason shown.
    other_tab = alice.context.new_page()
    other_errors = collect_console_errors(other_tab)
    other_tab.goto(alice.url)
    expect(other_tab.locator("#conversation")).to_have_attribute("data-socket", "open")
    alice.get_by_role("button", name="Log out").click()
    expect(alice.get_by_label("Password")).to_be_visible()
    expect(other_tab.locator("#composer-error")).to_contain_text("You logged out")
    expect(other_tab.locator("#conversation")).to_have_attribute("data-socket", "closed")
    other_tab.wait_for_timeout(1500)  # a retried connection would show within this
    expect(other_tab.locator("#conversation")).to_have_attribute("data-socket", "closed")
    assert other_errors == [], other_errors
    assert alice_errors == [], alice_errors
    bob.context.close()

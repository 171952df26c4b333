"""Issue 4 in a real browser: a parameter refused and saved, a tool defined and its card shown
and answered, a message edited and the branches switched."""

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS

pytestmark = pytest.mark.browser


def create_admin(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("a long passphrase 7")
    page.get_by_label("Password confirmation").fill("a long passphrase 7")
    page.get_by_role("button", name="Create administrator account").click()
    expect(page.get_by_label("Model", exact=True)).to_be_visible()


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def test_parameters_tools_and_branches(live_app, browser_page: Page):
    page = browser_page
    create_admin(page, live_app)

    # Define a tool with no built-in implementation; a broken schema is refused inline first.
    page.get_by_role("link", name="Tools").click()
    page.get_by_label("Name").fill("get_weather")
    page.get_by_label("Parameters (JSON Schema)").fill('{"type": "object", "properties": {')
    page.get_by_role("button", name="Save tool").click()
    expect(page.get_by_text("Parameters are not valid JSON")).to_be_visible()
    page.get_by_label("Parameters (JSON Schema)").fill(
        '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}'
    )
    page.get_by_role("button", name="Save tool").click()
    expect(page.get_by_role("list", name="Tools")).to_contain_text("get_weather")

    # A first chat; then its settings: an out-of-range temperature is refused, then saved.
    page.get_by_role("link", name="Back to chat").click()
    send(page, "Hello #chunks=10")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    page.get_by_role("button", name="Settings").click()
    page.get_by_label("Temperature").fill("7")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#error-temperature")).to_contain_text("between 0 and 2")
    expect(page.get_by_label("Temperature")).to_be_focused()
    page.get_by_label("Temperature").fill("0.4")
    page.get_by_label("get_weather").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    page.get_by_role("button", name="Close settings").click()

    # The model calls the tool: a card shows the call and asks for the result.
    send(page, "Weather in town? #call=get_weather")
    card = page.get_by_role("region", name="Tool call get_weather")
    expect(card).to_contain_text("waiting for your answer")
    expect(card).to_contain_text('"city"')
    page.screenshot(path=ARTIFACTS / "tool-card-awaiting.png")
    card.get_by_label("Result of get_weather").fill("Sunny and 21 degrees")
    card.get_by_role("button", name="Send result").click()
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(page.locator("article.turn").nth(1)).to_contain_text("Sunny and 21 degrees")

    # Edit the first message: a new branch replaces the path on screen; switch back and forth.
    first = page.locator("article.turn").first
    first.get_by_text("Edit", exact=True).click()
    first.get_by_label("Edited message").fill("Hello again, edited #chunks=10")
    first.get_by_role("button", name="Send edited message").click()
    expect(page.locator("article.turn")).to_have_count(1)
    expect(page.locator("article.turn[data-status='completed']")).to_contain_text(
        "Hello again, edited"
    )
    expect(page.get_by_text("2/2")).to_be_visible()
    page.get_by_role("button", name="Previous version").click()
    expect(page.locator("article.turn")).to_have_count(2)
    expect(page.get_by_text("1/2")).to_be_visible()
    page.reload()  # switching is persistent
    expect(page.locator("article.turn")).to_have_count(2)
    expect(page.get_by_text("1/2")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "branches.png", full_page=True)

    # A loaded page has no edit box per message (each text field slowed the page's load, issue
    # 20): opening Edit from the keyboard makes it, and the edited message is sent as before.
    expect(page.locator("#turns textarea")).to_have_count(0)
    first = page.locator("article.turn").first
    first.get_by_text("Edit", exact=True).focus()
    page.keyboard.press("Enter")
    first.get_by_label("Edited message").fill("Hello, edited from the keyboard #chunks=10")
    first.get_by_role("button", name="Send edited message").click()
    expect(page.get_by_text("3/3")).to_be_visible()
    expect(page.locator("article.turn[data-status='completed']").first).to_contain_text(
        "edited from the keyboard"
    )

"""Issue 19 in a real browser: the composer's "/" prompt menu with its variables form, and three
models compared side by side, streaming at once, one chosen to continue."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS

pytestmark = pytest.mark.browser


# Screenshots keep the caret: Playwright hides it with an inline style left behind as style="",
# which htmx then copies while settling a swap (a CSP violation the page itself never causes).


def create_admin(page: Page, url: str) -> list[str]:
    """Log in as the first account; returns the page's console errors as they come."""
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.goto(url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("a long passphrase 7")
    page.get_by_label("Password confirmation").fill("a long passphrase 7")
    page.get_by_role("button", name="Create administrator account").click()
    expect(page.get_by_label("Model", exact=True)).to_be_visible()
    return errors


def start_chat(page: Page, text: str) -> None:
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)


def test_slash_menu_lists_prompts_and_asks_for_variables(live_app, browser_page: Page):
    page = browser_page
    errors = create_admin(page, live_app)

    page.get_by_role("link", name="Prompts").click()
    for name, text in [
        (
            "Release note",
            "Write a release note for {{product}} in a {{tone|choice:formal,playful}} tone, "
            "dated {{day|date}}.",
        ),
        ("Review code", "Review this code for bugs."),
    ]:
        page.get_by_label("Name").fill(name)
        page.get_by_label("Text").fill(text)
        page.get_by_role("button", name="Save prompt").click()
        expect(page.get_by_role("list", name="Your prompts")).to_contain_text(name)
    page.get_by_role("link", name="Back to chat").click()
    start_chat(page, "Hello")

    box = page.get_by_label("Message", exact=True)
    box.fill("")
    box.press("/")
    menu = page.get_by_role("listbox", name="Prompts")
    expect(menu.get_by_role("option")).to_have_count(2)
    # The box names its list (aria-expanded is not allowed on a textarea: axe, issue 18).
    expect(box).to_have_attribute("aria-controls", "prompt-menu")
    # Typing filters; arrows move the highlight; Escape closes without sending anything.
    box.press("r")
    box.press("e")
    expect(menu.get_by_role("option")).to_have_count(2)
    expect(menu.get_by_role("option", selected=True)).to_contain_text("Release note")
    box.press("ArrowDown")
    expect(menu.get_by_role("option", selected=True)).to_contain_text("Review code")
    box.press("ArrowUp")
    expect(menu.get_by_role("option", selected=True)).to_contain_text("Release note")
    box.press("Escape")
    expect(menu).to_have_count(0)
    expect(page.locator("article.turn")).to_have_count(1)  # Enter/Escape did not send or stop

    box.fill("")
    box.press("/")
    expect(menu.get_by_role("option")).to_have_count(2)
    box.press("Enter")  # the highlighted prompt: its variables are asked for
    form = page.get_by_role("form", name="Variables of Release note")
    expect(form.get_by_label("product")).to_be_focused()
    form.get_by_label("product").fill("Switchboard 2")
    form.get_by_label("tone").select_option("playful")
    form.get_by_role("button", name="Insert").click()
    # The date is missing: the form stays, nothing is inserted.
    expect(form.locator("input[name=day]:invalid")).to_have_count(1)
    expect(box).to_have_value("/")
    form.get_by_label("day").fill("2026-12-24")
    page.screenshot(path=ARTIFACTS / "prompt-variables.png", full_page=True, caret="initial")
    form.get_by_role("button", name="Insert").click()
    expect(box).to_have_value(
        "Write a release note for Switchboard 2 in a playful tone, dated 2026-12-24."
    )
    expect(form).to_have_count(0)
    expect(box).to_be_focused()
    box.press("Enter")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(page.locator("article.turn").nth(1)).to_contain_text("release note for Switchboard 2")

    # A prompt without variables goes straight into the box.
    box.press("/")
    box.press("R")
    box.press("e")
    box.press("v")
    expect(menu.get_by_role("option")).to_have_count(1)
    box.press("Enter")
    expect(box).to_have_value("Review this code for bugs.")
    assert errors == []


def test_three_models_stream_side_by_side_and_one_continues(live_app, browser_page: Page):
    page = browser_page
    errors = create_admin(page, live_app)
    start_chat(page, "Hello")

    page.get_by_text("Compare models").click()
    for model in ("demo-chat", "gpt-5.4", "gpt-5.4-mini"):
        page.get_by_role("checkbox", name=model, exact=True).check()
    box = page.get_by_label("Message", exact=True)
    box.fill("Tell me a story #chunks=80 #delay=25")
    box.press("Enter")

    comparison = page.get_by_role("region", name="Comparing 3 models")
    expect(comparison).to_be_visible()
    columns = comparison.locator(".compare-column")
    expect(columns).to_have_count(3)
    # All three answers grow at the same time: seen running together, each with text.
    deadline = time.monotonic() + 15
    together = False
    while time.monotonic() < deadline and not together:
        running = columns.locator("article.turn[data-status='in_progress']").count()
        lengths = [len(columns.nth(i).locator(".answer").inner_text()) for i in range(3)]
        together = running == 3 and all(n > 0 for n in lengths)
        time.sleep(0.05)
    assert together, "the three answers did not stream at once"
    page.screenshot(path=ARTIFACTS / "compare-streaming.png", full_page=True, caret="initial")
    expect(columns.locator("article.turn[data-status='completed']")).to_have_count(
        3, timeout=30_000
    )
    for i, model in enumerate(("demo-chat", "gpt-5.4", "gpt-5.4-mini")):
        column = columns.nth(i)
        expect(column.locator(".compare-head")).to_contain_text(model)
        expect(column.locator(".turn-meta")).to_contain_text("tokens")
        expect(column.locator(".turn-meta")).to_contain_text("ms total")
        expect(column.locator(".compare-cost")).to_contain_text("cost")
    page.screenshot(path=ARTIFACTS / "compare-finished.png", full_page=True, caret="initial")

    # Stacked on a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    boxes = [columns.nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
    # The message box keeps the width of the screen; the picker goes under it.
    assert page.get_by_label("Message", exact=True).bounding_box()["width"] > 300
    page.screenshot(path=ARTIFACTS / "compare-phone.png", full_page=True, caret="initial")
    page.set_viewport_size({"width": 1280, "height": 860})
    boxes = [columns.nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] == boxes[1]["y"] == boxes[2]["y"]

    # Continue with the second answer: the next message follows it.
    page.get_by_role("button", name="Continue with the answer of gpt-5.4", exact=True).click()
    expect(columns.nth(1).locator(".compare-chosen")).to_be_visible()
    box.fill("And then?")
    box.press("Enter")
    follow_up = page.locator("#turns > article.turn").last
    expect(follow_up).to_contain_text("And then?")
    expect(follow_up).to_have_attribute("data-status", "completed")
    # Once the thread goes on, the path shows the chosen answer with its siblings as versions.
    page.reload()
    expect(comparison).to_have_count(0)
    turns = page.locator("#turns > article.turn")
    expect(turns).to_have_count(3)
    expect(turns.nth(1).locator(".turn-meta")).to_contain_text("gpt-5.4")
    expect(turns.nth(1).locator(".branch-position")).to_have_text("2/3")
    expect(turns.nth(2)).to_have_attribute("data-status", "completed")
    assert errors == []


def test_importing_a_chatgpt_export_with_upload_progress(live_app, browser_page: Page):
    page = browser_page
    errors = create_admin(page, live_app)
    page.get_by_role("link", name="Import").click()
    # Record what the progress bar does during the upload (htmx:xhr:progress).
    page.evaluate(
        """() => { window.progressSeen = [];
        document.addEventListener("htmx:xhr:progress", () => {
          const bar = document.getElementById("import-progress");
          window.progressSeen.push(bar.hidden ? "hidden" : "shown"); }); }"""
    )
    fixture = Path(__file__).parent / "fixtures" / "chatgpt_conversations.json"
    page.get_by_label("File").set_input_files(fixture)
    page.get_by_role("button", name="Import").click()
    result = page.locator("#import-result")
    expect(result).to_contain_text("Imported 2 chats")
    assert "shown" in page.evaluate("window.progressSeen")
    expect(page.locator("#import-progress")).to_be_hidden()
    page.screenshot(path=ARTIFACTS / "import-done.png", full_page=True, caret="initial")

    result.get_by_role("link", name="Sorting dicts in Python").click()
    turns = page.locator("#turns > article.turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator(".branch-position")).to_have_text("1/2")
    expect(turns.nth(1).locator(".branch-position")).to_have_text("2/2")
    expect(turns.nth(1).locator("pre")).to_contain_text('sorted(people, key=lambda p: (-p["age"]')

    # A broken file is refused with the reason; nothing is added.
    page.get_by_role("link", name="Import").click()
    page.get_by_label("File").set_input_files(
        files=[{"name": "conversations.json", "mimeType": "application/json", "buffer": b"{oops"}]
    )
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("alert")).to_contain_text("This file is not JSON")
    expect(page.get_by_role("navigation", name="Chats")).to_have_count(0)  # the import page
    page.goto(live_app + "/")
    chats = page.get_by_role("navigation", name="Chats")
    expect(chats.get_by_role("link", name="Sorting dicts in Python")).to_have_count(1)
    expect(chats.get_by_role("link", name="Chart from a photo")).to_have_count(1)
    assert errors == []

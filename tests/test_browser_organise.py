"""Organising chats in Chromium: a model-written title arrives live; pin, folder, archive and
restore from each chat's menu; 👍 with a comment on an answer. Screenshots in the artifacts."""

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD
from tests.support.seed import seed_data_dir
from tests.test_browser_csp import REPORT_VIOLATIONS

pytestmark = pytest.mark.browser


def make_account(data_dir, username: str) -> None:
    seed_data_dir(data_dir, users=[{"username": username, "password": PASSWORD}])


def chat_menu(page: Page, title: str):
    """Open the "⋯" menu of the sidebar entry ``title``; its body once loaded."""
    item = page.locator("#sidebar-lists .chat-item", has_text=title).first
    item.locator("summary").click()
    body = item.locator(".chat-menu-body")
    expect(body.get_by_role("button", name="Delete")).to_be_visible()
    return body


@pytest.mark.live_env(AUTO_TITLES="1")
def test_titles_sidebar_and_feedback(live_app, browser_page: Page, tmp_path):
    make_account(tmp_path, "alice")
    page = browser_page
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and errors.append(f"{page.url}: {message.text} {message.location}")
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.expose_function("reportViolation", lambda text: errors.append("csp: " + text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.goto(live_app + "/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    # The first answer; then a model's title replaces the first line, live.
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")
    page.get_by_label("Message", exact=True).fill(
        "plan a hiking trip to the alps in june #chunks=60 #delay=40"
    )
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    title = "Plan a hiking trip to"
    expect(page.locator("#title")).to_have_value(title)
    expect(page.locator("#thread-list")).to_contain_text(title)
    expect(page).to_have_title(f"{title} · Switchboard")
    page.screenshot(path=ARTIFACTS / "organise-model-title.png")

    # Pin it: it moves to the top, under "Pinned".
    chat_menu(page, title).get_by_role("button", name="Pin").click()
    expect(page.locator("#pinned-list")).to_contain_text(title)
    expect(page.locator("#thread-list")).not_to_contain_text(title)
    page.screenshot(path=ARTIFACTS / "organise-pinned.png")
    chat_menu(page, title).get_by_role("button", name="Unpin").click()
    expect(page.locator("#pinned-list")).to_have_count(0)

    # A folder, and the chat moved into it from its menu.
    page.get_by_text("New folder", exact=True).click()
    page.locator(".new-folder").get_by_label("Folder name").fill("Travel")
    page.get_by_role("button", name="Create folder").click()
    menu = chat_menu(page, title)
    menu.get_by_label("Move to").select_option(label="Travel")
    page.screenshot(path=ARTIFACTS / "organise-chat-menu.png")
    menu.get_by_role("button", name="Move").click()
    folder = page.locator("#sidebar-lists .folder", has_text="Travel")
    expect(folder.locator(".folder-count")).to_have_text("1")
    folder.locator("summary.folder-name").click()
    expect(folder.locator(".chat-item")).to_contain_text(title)
    page.screenshot(path=ARTIFACTS / "organise-folder.png")

    # Archive: gone from the sidebar, found in the archive, restored from there.
    chat_menu(page, title).get_by_role("button", name="Archive").click()
    expect(page.locator(".folder-count")).to_have_text("0")
    page.get_by_role("link", name="Archived chats").click()
    expect(page.locator("#archived-list")).to_contain_text(title)
    page.screenshot(path=ARTIFACTS / "organise-archive.png")
    archived = page.locator("#archived-list .chat-item", has_text=title)
    archived.locator("summary").click()
    archived.get_by_role("button", name="Restore").click()
    expect(page.get_by_text(f"“{title}” is back in your chats.")).to_be_visible()
    expect(page.locator("#archived-list")).not_to_contain_text(title)
    expect(page.locator(".folder-count")).to_have_text("1")  # back in its folder

    # Dragged out of the folder onto the chat list (the menu does the same without a mouse).
    folder = page.locator("#sidebar-lists .folder", has_text="Travel")
    folder.locator("summary.folder-name").click()
    folder.locator(".chat-item", has_text=title).drag_to(page.locator("#thread-list"))
    expect(page.locator(".folder-count")).to_have_text("0")
    expect(page.locator("#thread-list")).to_contain_text(title)

    # 👍 with a comment on the answer, still there after a reload.
    page.locator("#thread-list .chat-item a", has_text=title).click()
    page.get_by_role("button", name="Good answer").click()
    expect(page.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")
    page.get_by_label("What made this answer good? (optional)").fill("Clear day-by-day plan.")
    page.get_by_role("button", name="Save comment").click()
    expect(page.get_by_text("Thanks for the feedback.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")
    page.get_by_text("Edit comment").click()
    expect(page.get_by_label("What made this answer good? (optional)")).to_have_value(
        "Clear day-by-day plan."
    )
    page.screenshot(path=ARTIFACTS / "organise-feedback.png")
    assert errors == [], "\n".join(errors)

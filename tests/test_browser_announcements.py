"""Staff post a banner in the admin; a member's open chat shows it at once, without reloading,
and a dismissed banner stays dismissed after a reload."""

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in
from tests.support.seed import seed_data_dir

pytestmark = pytest.mark.browser


def make_accounts(data_dir) -> None:
    seed_data_dir(
        data_dir,
        users=[
            {"username": "root", "email": "r@example.com", "password": PASSWORD, "superuser": True},
            {"username": "bob", "email": "b@example.com", "password": PASSWORD},
        ],
    )


def test_banner_appears_live_and_dismissal_survives_a_reload(
    live_app, browser_page: Page, tmp_path
):
    make_accounts(tmp_path)
    bob = browser_page
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    bob.on("console", on_console)
    staff = bob.context.browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    staff.set_default_timeout(15_000)

    # Bob is in a chat (its socket open) and sees no banner.
    log_in(bob, live_app, "bob")
    bob.get_by_label("Message", exact=True).fill("Hello")
    bob.get_by_label("Message", exact=True).press("Enter")
    bob.wait_for_url("**/t/*/")
    expect(bob.locator("article.turn[data-status='completed']")).to_have_count(1)
    expect(bob.locator(".announcement")).to_have_count(0)
    bob.evaluate("window.notReloaded = true")

    # Staff post a warning in the admin.
    log_in(staff, live_app, "root")
    staff.goto(live_app + "/admin/chat/announcement/add/")
    staff.get_by_label("Message").fill("Maintenance tonight at 22:00, expect a short outage.")
    staff.get_by_label("Level").select_option(label="Warning")
    staff.get_by_role("button", name="Save", exact=True).click()
    expect(staff.locator(".messagelist")).to_contain_text("was added successfully")

    # Bob's open page shows it without a reload.
    banner = bob.locator(".announcement-warning")
    expect(banner).to_contain_text("Maintenance tonight at 22:00")
    assert bob.evaluate("window.notReloaded") is True
    ARTIFACTS.mkdir(exist_ok=True)
    bob.screenshot(path=str(ARTIFACTS / "announcement-live.png"))

    # Dismissed, it stays gone after a reload (remembered on the server); staff still see it.
    banner.get_by_role("button", name="Dismiss this announcement").click()
    expect(bob.locator(".announcement")).to_have_count(0)
    bob.reload()
    expect(bob.locator("article.turn[data-status='completed']")).to_have_count(1)
    expect(bob.locator(".announcement")).to_have_count(0)
    staff.goto(live_app + "/usage/")
    expect(staff.locator(".announcement-warning")).to_contain_text("Maintenance tonight")
    staff.screenshot(path=str(ARTIFACTS / "announcement-staff-page.png"))
    assert errors == []

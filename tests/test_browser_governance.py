"""In a browser: a team's member sees the budget banner and the model kept for their team; a
member of no team sees neither. No console errors, nothing blocked by the CSP."""

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.support import browser as support
from tests.support.browser import PASSWORD
from tests.support.seed import seed_data_dir

pytestmark = pytest.mark.browser


def set_up(data_dir) -> None:
    """Staff's part: Research (alice) has a 100-token budget, 90 used, and gpt-5.4 is for
    Research only; bob is in no team."""
    seed_data_dir(
        data_dir,
        default_provider=True,
        users=[
            {"username": "alice", "email": "a@example.com", "password": PASSWORD},
            {"username": "bob", "email": "b@example.com", "password": PASSWORD},
        ],
        teams=[{"name": "Research", "members": ["alice"], "token_budget_per_month": 100}],
        model_settings=[{"model": "gpt-5.4", "teams": ["Research"]}],
        usage=[{"user": "alice", "total_tokens": 90}],
    )


def log_in(page: Page, url: str, username: str) -> None:
    """Log in and wait for the chat page (the model list is read from it)."""
    support.log_in(page, url, username)
    page.wait_for_url(url + "/")


def test_budget_banner_and_model_picker_by_team(live_app, browser_page: Page, tmp_path):
    set_up(tmp_path)
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    log_in(page, live_app, "alice")
    banner = page.locator(".budget-banner")
    expect(banner).to_contain_text(
        "Team budget: Research has used 90 % of its monthly token budget: 10 tokens left"
    )
    model = page.get_by_label("Model", exact=True)
    expect(model.locator("option", has_text="gpt-5.4").first).to_be_attached()
    model.select_option(label="gpt-5.4")
    page.screenshot(path=ARTIFACTS / "governance-team-member.png", full_page=True)

    page.context.clear_cookies()
    log_in(page, live_app, "bob")
    expect(page.locator(".budget-banner")).to_have_count(0)
    options = page.get_by_label("Model", exact=True).locator("option").all_inner_texts()
    assert "gpt-5.4" not in options and "demo-chat" in options
    page.screenshot(path=ARTIFACTS / "governance-no-team.png", full_page=True)
    assert problems == []


def test_test_connection_before_saving_a_provider(live_app, browser_page: Page, tmp_path):
    from tests.test_browser_admin import demo_key

    set_up(tmp_path)
    root = {"username": "root", "email": "r@example.com", "password": PASSWORD, "superuser": True}
    seed_data_dir(tmp_path, users=[root])
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    log_in(page, live_app, "root")
    page.goto(live_app + "/admin/chat/provider/add/")
    page.get_by_label("Name").fill("Team gateway")
    page.get_by_label("Base url").fill(live_app + "/demo/v1")
    page.get_by_label("Api key").fill("sk-wrong-key-0000")
    button = page.get_by_role("button", name="Test connection")
    result = page.locator("#test-unsaved-result")
    button.click()
    expect(result).to_contain_text("Connection failed: The gateway refused the API key (401)")
    page.get_by_label("Api key").fill(demo_key(tmp_path))
    button.click()
    expect(result).to_contain_text("Connected: the gateway offers 5 models: demo-chat")
    page.screenshot(path=ARTIFACTS / "governance-test-before-save.png", full_page=True)
    # Nothing was saved: the provider list has only the built-in demo gateway.
    page.goto(live_app + "/admin/chat/provider/")
    expect(page.locator("#result_list")).not_to_contain_text("Team gateway")
    assert problems == []

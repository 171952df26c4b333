"""Staff set up a gateway and a quota in the admin; a member runs into the quota in the chat."""

import hashlib

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in

pytestmark = pytest.mark.browser


def demo_key(data_dir) -> str:
    """The key the live server's mounted demo gateway accepts (see chat.startup)."""
    secret = (data_dir / "secret_key").read_text().strip()
    return "demo-" + hashlib.sha256(b"switchboard-demo:" + secret.encode()).hexdigest()[:32]


def test_staff_sets_up_a_gateway_and_a_quota_that_a_member_hits(
    live_app, browser_page: Page, tmp_path
):
    page = browser_page
    page.goto(live_app)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator account").click()
    expect(page.get_by_role("link", name="Dashboard")).to_be_visible()

    # Add a provider with a wrong key: the connection test says so in plain words.
    page.goto(live_app + "/admin/chat/provider/add/")
    page.get_by_label("Name").fill("Team gateway")
    page.get_by_label("Base url").fill(live_app + "/demo/v1")
    page.get_by_label("Api key").fill("sk-wrong-key-0000")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".field-api_key_masked")).to_contain_text("sk-…0000")
    page.get_by_role("link", name="Test connection").click()
    expect(page.locator(".messagelist")).to_contain_text(
        "Team gateway: Connection failed: The gateway refused the API key (401)"
    )
    assert "sk-wrong-key-0000" not in page.content()

    # The right key: connected, with the gateway's models listed.
    page.get_by_label("Api key").fill(demo_key(tmp_path))
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("link", name="Test connection").click()
    expect(page.locator(".messagelist")).to_contain_text(
        "Team gateway: Connected: the gateway offers 5 models: demo-chat"
    )
    assert demo_key(tmp_path) not in page.content()
    page.screenshot(path=ARTIFACTS / "admin-test-connection.png", full_page=True)

    # A member with a small daily quota.
    page.goto(live_app + "/admin/auth/user/add/")
    page.get_by_label("Username").fill("member")
    page.get_by_label("Role").select_option("member")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.locator("#id_quota-0-tokens_per_day").fill("30")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#id_quota-0-tokens_per_day")).to_have_value("30")

    # The audit log has the provider's changes, never its key.
    page.goto(live_app + "/admin/chat/auditlogentry/")
    expect(page.locator("#result_list")).to_contain_text("API key")
    expect(page.locator("#result_list")).to_contain_text("Team gateway")
    assert demo_key(tmp_path) not in page.content()
    page.get_by_role("button", name="Log out").click()

    # The member chats once, then hits the quota: the refusal is in the chat, in words.
    log_in(page, live_app, "member")
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")
    page.get_by_label("Message", exact=True).fill("Hello, how much can I say?")
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    page.get_by_label("Message", exact=True).fill("One more question")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator("#composer-error")).to_contain_text(
        "You have used all 30 tokens of your daily quota"
    )
    expect(page.locator("article.turn")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "member-quota-refused.png", full_page=True)

    # Their usage page says what is left.
    page.get_by_role("link", name="Usage").click()
    expect(page.locator("#quota-summary")).to_contain_text("of 30 tokens used, 0 left")
    expect(page.get_by_role("link", name="Dashboard")).to_have_count(0)
    assert page.goto(live_app + "/admin/usage/").status == 403

    # Staff see the member's usage on the dashboard, charts drawn by the vendored Chart.js.
    page.goto(live_app + "/accounts/login/")
    log_in(page, live_app, "admin")
    page.goto(live_app + "/admin/usage/")
    expect(page.locator("html[data-charts-ready='true']")).to_have_count(1)
    expect(page.locator("#total-requests")).to_have_text("1")
    expect(page.get_by_role("table", name="By user")).to_contain_text("member")
    page.screenshot(path=ARTIFACTS / "usage-dashboard.png", full_page=True)

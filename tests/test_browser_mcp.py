"""MCP tools in a real browser: staff register a server that wants approval and test it, a
user adds its tool from the library and enables it in a chat, then approves one call and
rejects another in the tool card."""

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.test_browser_branches_tools import create_admin, send

pytestmark = pytest.mark.browser


def test_register_add_approve_and_reject(live_app, browser_page: Page, mcp_url):
    page = browser_page
    create_admin(page, live_app)

    # Staff: register the server, each call to be approved; "Test connection" lists its tools.
    page.goto(f"{live_app}/admin/chat/mcpserver/add/")
    page.get_by_label("Name").fill("wiki")
    page.get_by_label("Url").fill(mcp_url)
    page.get_by_label("Requires approval").check()
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("link", name="Test connection").click()
    expect(page.locator(".messagelist")).to_contain_text("connected;")
    expect(page.locator(".messagelist")).to_contain_text("echo")

    # The library lists the tools by server; add echo.
    page.goto(f"{live_app}/tools/")
    server = page.locator(".mcp-server[data-server='wiki']")
    expect(server).to_contain_text("Echo the text back.")
    server.locator("li.mcp-tool", has_text="echo").get_by_role("button", name="Add").click()
    expect(page.get_by_role("list", name="Tools", exact=True)).to_contain_text("echo")
    page.screenshot(path=ARTIFACTS / "mcp-library.png", full_page=True)

    # A chat that offers it.
    page.get_by_role("link", name="Back to chat").click()
    send(page, "Hello #chunks=3")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    page.get_by_role("button", name="Settings").click()
    page.get_by_label("echo").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    page.get_by_role("button", name="Close settings").click()

    # Approve: the call runs on the server, the card says done with its duration.
    send(page, "Say it #call=echo")
    card = page.get_by_role("region", name="Tool call echo").last
    expect(card).to_contain_text("awaiting approval")
    expect(card).to_contain_text("on wiki")
    page.screenshot(path=ARTIFACTS / "mcp-card-approval.png")
    card.get_by_role("button", name="Approve").click()
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(card).to_contain_text("done")
    expect(card).to_contain_text("echo: demo")
    expect(card.locator(".tool-duration")).to_contain_text("ms")
    page.screenshot(path=ARTIFACTS / "mcp-card-done.png")

    # Reject: the server is never called, the model is told.
    send(page, "Again #call=echo")
    card = page.get_by_role("region", name="Tool call echo").last
    expect(card).to_contain_text("awaiting approval")
    card.get_by_role("button", name="Reject").click()
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(3)
    expect(card).to_contain_text("rejected")
    expect(page.locator("article.turn").last).to_contain_text("did not approve")

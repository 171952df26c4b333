"""Issue 18, items 1 and 5, in Chromium against a live server: typed text is never lost (typed
while an answer streams it is queued and sent after; refused by the rate limit it stays with the
reason; a draft survives a reload) and the connection's state is said (Reconnecting…, Send
disabled, Connected again)."""

import re

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in
from tests.support.seed import seed_data_dir

pytestmark = pytest.mark.browser


def start_chat(page: Page, url: str, tmp_path, first_message: str) -> None:
    seed_data_dir(
        tmp_path, users=[{"username": "alice", "email": "a@example.com", "password": PASSWORD}]
    )
    log_in(page, url, "alice")
    box = page.get_by_label("Message", exact=True)
    box.fill(first_message)
    box.press("Enter")
    page.wait_for_url("**/t/*/")


def test_text_typed_while_an_answer_streams_is_queued_then_sent(
    live_app, browser_page: Page, tmp_path
):
    page = browser_page
    start_chat(page, live_app, tmp_path, "A long answer please #chunks=150 #delay=20")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    box = page.get_by_label("Message", exact=True)
    box.fill("What about the second point?")
    box.press("Enter")
    queue = page.get_by_role("list", name="Queued messages")
    expect(queue).to_contain_text("Queued")
    expect(queue).to_contain_text("What about the second point?")
    # Another one, then cancelled: its text comes back into the box.
    box.fill("Never mind this one")
    box.press("Enter")
    expect(queue.get_by_role("listitem")).to_have_count(2)
    page.screenshot(path=ARTIFACTS / "composer-queued.png")
    queue.get_by_role("listitem").nth(1).get_by_role("button", name="Cancel").click()
    expect(box).to_have_value("Never mind this one")
    expect(box).to_be_focused()
    box.fill("")

    # When the answer ends, the queued message is sent: a second turn, the queue gone.
    expect(page.locator("article.turn")).to_have_count(2, timeout=20_000)
    expect(page.locator("article.turn").nth(1).locator(".message.user")).to_contain_text(
        "What about the second point?"
    )
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2, timeout=20_000)
    expect(queue).to_have_count(0)

    # A draft survives a reload, and is forgotten once sent.
    box.fill("A draft I have not sent yet")
    page.reload()
    expect(page.get_by_label("Message", exact=True)).to_have_value("A draft I have not sent yet")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator("article.turn")).to_have_count(3)
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(3, timeout=20_000)
    page.reload()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")


@pytest.mark.live_env(RATE_LIMIT_PER_MINUTE="1")
def test_text_refused_by_the_rate_limit_stays_with_the_reason(
    live_app, browser_page: Page, tmp_path
):
    page = browser_page
    start_chat(page, live_app, tmp_path, "Only one a minute")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    box = page.get_by_label("Message", exact=True)
    box.fill("One too many, and long to type again")
    box.press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("sending messages too quickly")
    expect(box).to_have_value("One too many, and long to type again")
    expect(page.locator("article.turn")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "composer-rate-limited.png")


def test_a_dropped_connection_is_said_and_send_waits_for_it(live_app, browser_page: Page, tmp_path):
    page = browser_page
    routes: list[WebSocketRoute] = []

    def through(route: WebSocketRoute) -> None:
        routes.append(route)
        route.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/threads/"), through)
    start_chat(page, live_app, tmp_path, "Hello")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    expect(page.locator("#presence")).to_contain_text("alice")
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_enabled()

    # The server side goes away (a worker restarting closes with 1012); the page's next try
    # is made to wait 3 s so that what it shows meanwhile can be seen.
    page.evaluate("htmx.config.wsReconnectDelay = function () { return 3000; }")
    routes[-1].close(code=1012, reason="restarting")
    status = page.get_by_role("status").filter(has_text="Reconnecting")
    expect(status).to_be_visible()
    expect(send).to_be_disabled()
    expect(page.locator("#presence")).to_be_empty()
    page.screenshot(path=ARTIFACTS / "composer-reconnecting.png")

    # Typed meanwhile: queued, and sent once the socket is back.
    box = page.get_by_label("Message", exact=True)
    box.fill("Sent after the reconnection")
    box.press("Enter")
    expect(page.get_by_role("list", name="Queued messages")).to_contain_text("Sent after")

    again = page.get_by_role("status").filter(has_text="Connected again")
    expect(again).to_be_visible(timeout=10_000)
    expect(status).to_have_count(0)
    expect(send).to_be_enabled()
    expect(page.locator("#presence")).to_contain_text("alice")
    expect(page.locator("article.turn")).to_have_count(2)
    expect(page.locator("article.turn").nth(1)).to_contain_text("Sent after the reconnection")
    expect(again).to_have_count(0, timeout=10_000)  # said, then gone

"""In Chromium: each message shows its time and each answer its cost (issue 18, item 8), the
time stays true while the page is open (static/js/message-time.js), and math in a message is
drawn as MathML (item 9). Screenshots in the artifacts."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import log_in
from tests.support.seed import seed_data_dir
from tests.test_browser_csp import REPORT_VIOLATIONS

pytestmark = pytest.mark.browser

MESSAGE = "Area $\\pi r^2$, a ratio\n\n$$\\frac{a}{b}$$\n\nand prices $5 and $10 #chunks=4"


def test_time_cost_and_math_on_the_page(live_app, browser_page: Page, tmp_path):
    seed_data_dir(
        tmp_path,
        users=[{"username": "alice", "password": "a long passphrase 7"}],
        model_settings=[{"model": "demo-chat", "price_input": "2.5", "price_output": "10"}],
    )
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.expose_function("reportViolation", lambda text: errors.append("csp: " + text))
    page.add_init_script(REPORT_VIOLATIONS)
    log_in(page, live_app, "alice")
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")
    send(page, MESSAGE)
    page.wait_for_url("**/t/*/")
    turn = page.locator("article.turn[data-status='completed']")
    expect(turn).to_have_count(1)

    # Cost next to the tokens, in the site currency; a time under the question and the answer.
    meta = turn.locator(".turn-meta")
    expect(meta.locator(".turn-cost")).to_have_text(re.compile(r"^\$0\.\d+$"))
    times = turn.locator("time.message-time")
    expect(times).to_have_count(2)
    for index in range(2):
        expect(times.nth(index)).to_have_attribute("title", re.compile(r"\d{4}"))
        expect(times.nth(index)).to_have_text("now")

    # Math is MathML that the browser lays out; the prices stay text.
    user = turn.locator(".message.user")
    expect(user.locator("math")).to_have_count(2)
    fraction = user.locator("mfrac").bounding_box()
    assert fraction is not None and fraction["width"] > 0 and fraction["height"] > 0
    expect(user).to_contain_text("prices $5 and $10")
    page.screenshot(path=ARTIFACTS / "message-meta-and-math.png", full_page=True)

    # The relative time is rewritten while the page stays open (here when the next answer
    # arrives over the socket), in the page's language.
    page.evaluate(
        """() => document.querySelector('time.message-time')
            .setAttribute('datetime', new Date(Date.now() - 180000).toISOString())"""
    )
    send(page, "Second #chunks=2")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(times.first).to_have_text("3 minutes ago")
    page.evaluate("() => { document.documentElement.lang = 'zh-hans'; }")
    send(page, "Third #chunks=2")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(3)
    expect(times.first).to_have_text("3分钟前")
    page.screenshot(path=ARTIFACTS / "message-meta-relative.png", full_page=True)
    assert errors == []


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")

"""Two people, two browsers: one shares a chat, both watch the same answer stream live."""

import time

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in
from tests.support.seed import seed_data_dir

pytestmark = pytest.mark.browser


def make_accounts(data_dir) -> None:
    """Staff's part: two members of one team."""
    seed_data_dir(
        data_dir,
        users=[
            {"username": "alice", "email": "a@example.com", "password": PASSWORD},
            {"username": "bob", "email": "b@example.com", "password": PASSWORD},
        ],
        teams=[{"name": "Platform", "members": ["alice", "bob"]}],
    )


def test_two_people_watch_the_same_stream(live_app, browser_page: Page, tmp_path):
    make_accounts(tmp_path)
    alice = browser_page
    bob = alice.context.browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    bob.set_default_timeout(15_000)

    # Alice starts a chat and shares it with her team, read only.
    log_in(alice, live_app, "alice")
    alice.get_by_label("Message", exact=True).fill("Team plan for Q3")
    alice.get_by_label("Message", exact=True).press("Enter")
    alice.wait_for_url("**/t/*/")
    expect(alice.locator("article.turn[data-status='completed']")).to_have_count(1)
    alice.get_by_role("button", name="Share").click()
    alice.get_by_label("Team", exact=True).select_option(label="Platform")
    alice.get_by_label("Access", exact=True).select_option(label="Read only")
    alice.get_by_role("button", name="Share", exact=True).last.click()
    expect(alice.locator(".sharing")).to_contain_text("Shared with Platform.")

    # Bob finds it under "Shared with me"; he can follow but not write.
    log_in(bob, live_app, "bob")
    shared = bob.get_by_role("list", name="Shared with me")
    expect(shared).to_contain_text("Team plan for Q3")
    shared.get_by_role("link").first.click()
    expect(bob.locator(".read-only-note")).to_contain_text("alice shared this chat with you")
    expect(bob.get_by_label("Message", exact=True)).to_be_hidden()

    # Both see who is here.
    for page in (alice, bob):
        expect(page.locator("#presence")).to_contain_text("alice")
        expect(page.locator("#presence")).to_contain_text("bob")

    # Alice asks for a long answer; Bob's page shows it growing, in pieces, as hers does.
    alice.get_by_label("Message", exact=True).fill("Details please #chunks=150 #delay=20")
    alice.get_by_label("Message", exact=True).press("Enter")
    answer = bob.locator("article.turn").nth(1).locator(".answer")
    seen: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen.append(len(answer.inner_text()))
        if bob.locator("article.turn[data-status='completed']").count() == 2:
            break
        time.sleep(0.05)
    assert len({n for n in seen if n > 0}) >= 3, f"Bob did not see it stream: {seen}"
    expect(bob.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(alice.locator("article.turn[data-status='completed']")).to_have_count(2)
    alices = alice.locator("article.turn").nth(1).locator(".answer")
    assert answer.text_content() == alices.text_content()
    alice.screenshot(path=ARTIFACTS / "team-alice.png", full_page=True)
    bob.screenshot(path=ARTIFACTS / "team-bob.png", full_page=True)

    # Alice stops sharing (the panel is still open): Bob's page says so at once.
    alice.get_by_role("button", name="Stop sharing with team Platform").click()
    expect(alice.locator(".sharing")).to_contain_text("Only you can see this chat.")
    expect(bob.locator("#composer-error")).to_contain_text("no longer shared with you")
    expect(alice.locator("#presence")).not_to_contain_text("bob")
    bob.screenshot(path=ARTIFACTS / "team-bob-revoked.png", full_page=True)
    bob.context.close()

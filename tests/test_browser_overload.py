"""A saturated worker, as a person sees it: the new chat's answer waits with its place shown,
then streams once the answer ahead of it ends."""

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in
from tests.support.seed import seed_data_dir

pytestmark = pytest.mark.browser


@pytest.fixture
def one_answer_at_a_time(monkeypatch):
    """The live app (started after this) streams one answer at a time."""
    monkeypatch.setenv("MAX_RUNNING_TURNS", "1")


def test_a_waiting_answer_shows_its_place_then_streams(
    one_answer_at_a_time, live_app, browser_page: Page, tmp_path
):
    seed_data_dir(
        tmp_path, users=[{"username": "alice", "email": "a@example.com", "password": PASSWORD}]
    )
    first = browser_page
    log_in(first, live_app, "alice")
    first.get_by_label("Message", exact=True).fill("Take the only place #chunks=250 #delay=20")
    first.get_by_label("Message", exact=True).press("Enter")
    first.wait_for_url("**/t/*/")
    expect(first.locator("article.turn[data-status='in_progress']")).to_have_count(1)

    second = first.context.new_page()
    second.goto(live_app)
    second.get_by_label("Message", exact=True).fill("Then me")
    second.get_by_label("Message", exact=True).press("Enter")
    second.wait_for_url("**/t/*/")
    waiting = second.locator("article.turn .turn-waiting")
    expect(waiting).to_have_text("Waiting — next in line")
    second.screenshot(path=ARTIFACTS / "turn-waiting.png", full_page=True)

    # The first answer ends; the waiting one starts and is answered.
    expect(first.locator("article.turn[data-status='completed']")).to_have_count(1, timeout=30_000)
    expect(second.locator("article.turn[data-status='completed']")).to_have_count(1, timeout=30_000)
    expect(second.locator("article.turn .answer")).to_contain_text("Then me")
    expect(waiting).to_have_count(0)

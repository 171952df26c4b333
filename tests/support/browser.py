"""Steps the browser tests share (Playwright pages against ``tests/live_server.py``'s app)."""

from __future__ import annotations

from playwright.sync_api import Page

PASSWORD = "a long passphrase 7"  # long enough for the password validators


def log_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form of the app at ``url``."""
    page.goto(url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()

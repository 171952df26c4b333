"""Steps the browser tests share (Playwright pages against ``tests/live_server.py``'s app)."""

from __future__ import annotations

from playwright.sync_api import Page

PASSWORD = "a long passphrase 7"  # long enough for the password validators


def log_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form of the app at ``url``, whatever the page's language (the
    fields by their names: the labels are translated)."""
    page.goto(url + "/accounts/login/")
    form = page.locator("form", has=page.locator("input[name=username]"))
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()

"""Signing in through a real OpenID Provider's page in Debian's Chromium, then chatting."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.signin_fixtures import CLIENT_ID, CLIENT_SECRET, running_oidc_provider

pytestmark = pytest.mark.browser


@pytest.fixture
def provider_for_live_app(tmp_path, live_app_port, monkeypatch):
    """A provider that sends browsers back to the live app; the app configured for it (the
    environment is read when the live app starts, after this fixture)."""
    app = f"http://127.0.0.1:{live_app_port}"
    with running_oidc_provider(
        tmp_path / "oidc", [f"{app}/accounts/oidc/callback/"], [f"{app}/accounts/login/"]
    ) as provider:
        for name, value in {
            "OIDC_ISSUER": provider.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_SCOPES": "openid email profile groups",
            "OIDC_BUTTON_LABEL": "Sign in with Example SSO",
            "OIDC_ADMIN_GROUPS": "switchboard-admins",
            "LOCAL_LOGIN": "0",
        }.items():
            monkeypatch.setenv(name, value)
        yield provider


def test_sign_in_with_the_provider_and_chat(provider_for_live_app, live_app, browser_page: Page):
    page = browser_page
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and errors.append(f"{message.location.get('url')}: {message.text}")
        ),
    )
    page.goto(live_app)

    # No first-run form (the administrators come from the provider), no password form.
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    page.get_by_role("link", name="Sign in with Example SSO").click()

    # The provider's own login page.
    page.wait_for_url(provider_for_live_app.issuer + "/**")
    page.get_by_label("Login").fill("boss")
    page.get_by_label("Password").fill("boss-pass")
    page.get_by_role("button", name="Sign in").click()

    # Back in Switchboard, signed in, in the chat.
    page.wait_for_url(live_app + "/")
    model = page.get_by_label("Model", exact=True)
    expect(model).to_be_visible()
    model.select_option(label="demo-chat")
    page.get_by_label("Message", exact=True).fill("Hello after single sign-on")
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    expect(page.locator("article.turn .answer")).not_to_be_empty()
    page.screenshot(path=ARTIFACTS / "signin-oidc-chat.png", full_page=True)
    assert errors == []

    # Log out: the provider's session ends too (its logout confirmation), then back to login.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(provider_for_live_app.issuer + "/**")
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(live_app + "/accounts/login/**")
    expect(page.get_by_role("link", name="Sign in with Example SSO")).to_be_visible()
    # Signed out at the provider too: signing in again asks for the password.
    page.get_by_role("link", name="Sign in with Example SSO").click()
    expect(page.get_by_label("Password")).to_be_visible()

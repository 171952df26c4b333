"""Every page works under the Content-Security-Policy, with no violation and no console error,
and a remote image in a streamed answer waits for a click (issue 11, findings 3 and 4)."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from tests.gateway_fixtures import free_port
from tests.live_server import ARTIFACTS

pytestmark = pytest.mark.browser

PASSWORD = "a long passphrase 7"

# Runs in every page and frame before its own scripts: every CSP violation is reported.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.reportViolation([event.violatedDirective, event.blockedURI, event.sourceFile,
                          event.lineNumber, location.pathname].join(" "));
});
"""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class ImageHost:
    """Another origin serving images, which remembers every request it got."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                body = png(160, 90, (214, 69, 65) if "secret" in self.path else (37, 87, 214))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fetched(self, name: str) -> bool:
        return any(name in path for path in self.requests)


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    yield host
    host.server.shutdown()


@pytest.fixture
def watched_page(browser_page: Page) -> Iterator[tuple[Page, list[str]]]:
    """The page, and the CSP violations and console errors seen on it (any frame)."""
    problems: list[str] = []
    page = browser_page
    page.expose_function("reportViolation", lambda text: problems.append(f"CSP: {text}"))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: message.type == "error"
        and problems.append(f"console: {message.text} ({message.location['url']})"),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "response",
        lambda response: response.status >= 400
        and problems.append(f"HTTP {response.status}: {response.url}"),
    )
    yield page, problems


def visit(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


def test_every_page_under_the_policy_and_a_remote_image_on_click(
    live_app, watched_page, image_host: ImageHost
):
    page, problems = watched_page
    remote = f"http://127.0.0.1:{image_host.port}"
    allowed = f"http://localhost:{image_host.port}"

    # First run, then log out and in again.
    visit(page, live_app)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create administrator account").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_label("Message", exact=True)).to_be_visible()
    # htmx read its configuration: no injected indicator style, no eval.
    assert page.evaluate("[htmx.config.includeIndicatorStyles, htmx.config.allowEval]") == [
        False,
        False,
    ]

    # Staff allow one image host in the site settings (admin change form).
    visit(page, live_app + "/admin/chat/sitesettings/1/change/")
    page.get_by_label("Allowed image hosts").fill(f"localhost:{image_host.port}")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    # A streamed answer with markdown, code, a table, a remote image and an allowed one (the
    # demo gateway quotes the message).
    visit(page, live_app)
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")
    page.get_by_label("Message", exact=True).fill(
        f"Compare ![secret chart]({remote}/secret.png?q=SECRET) with "
        f"![our logo]({allowed}/logo.png) please #delay=20"
    )
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    answer = page.locator("article.turn .answer")
    expect(answer.locator("pre.code")).to_be_visible()
    expect(answer.locator("table")).to_be_visible()
    load = answer.get_by_role("link", name=f"Load image from 127.0.0.1:{image_host.port}")
    expect(load).to_have_text(f"Load image from 127.0.0.1:{image_host.port}: secret chart")
    expect(page.locator(".message.user a.remote-image")).to_have_count(1)
    logo = answer.locator(f"img[src='{allowed}/logo.png']")
    expect(logo).to_be_visible()
    assert logo.evaluate("image => image.complete && image.naturalWidth") == 160
    page.wait_for_load_state("networkidle")
    assert not image_host.fetched("secret.png"), image_host.requests  # not without a click
    page.screenshot(path=ARTIFACTS / "remote-image-link.png", full_page=True)

    # The reader clicks: the image appears in place, from its host.
    load.click()
    frame = answer.locator("iframe.remote-image-frame")
    expect(frame).to_have_attribute("data-loaded", "true")
    assert frame.evaluate("frame => frame.getBoundingClientRect().width") == 160
    assert image_host.fetched("secret.png?q=SECRET")
    page.screenshot(path=ARTIFACTS / "remote-image-loaded.png", full_page=True)

    # The thread's panels, search, and the other pages.
    page.get_by_role("button", name="Settings").click()
    expect(page.get_by_role("heading", name="Chat settings")).to_be_visible()
    page.get_by_role("button", name="Close settings").click()
    expect(page.locator("#settings-panel")).to_be_empty()
    page.get_by_role("button", name="Share").click()
    expect(page.locator("#settings-panel")).not_to_be_empty()
    page.locator("#settings-panel").get_by_role("button", name="Close").click()
    expect(page.locator("#settings-panel")).to_be_empty()
    page.get_by_label("Search chats").fill("Compare")
    expect(page.locator("#search-results")).to_contain_text("Compare")
    thread_url = page.url

    for path in [
        "/search/?q=secret",
        "/tools/",
        "/prompts/",
        "/import/",
        "/usage/",
        "/admin/",
        "/admin/chat/thread/",
        "/admin/chat/team/add/",
        "/admin/auth/user/",
        "/accounts/password_change/",
    ]:
        visit(page, live_app + path)
    visit(page, live_app + "/admin/usage/")
    expect(page.locator("html[data-charts-ready='true']")).to_have_count(1)
    visit(page, live_app + "/admin/chat/thread/")
    page.locator("#result_list tbody th a").first.click()
    expect(page.locator("#thread_form")).to_be_visible()
    page.wait_for_load_state("networkidle")

    # After a reload the image waits for a click again; its page opens on its own too.
    visit(page, thread_url)
    expect(page.locator("a.remote-image")).to_have_count(2)
    viewer = page.locator("article.turn .answer a.remote-image").get_attribute("href")
    visit(page, live_app + viewer)
    assert page.locator("img").evaluate("image => image.naturalWidth") == 160

    visit(page, thread_url)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert problems == []

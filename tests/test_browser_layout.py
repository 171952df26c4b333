"""Layout at desktop, tablet and phone sizes, in Chromium (issue 18): no page scrolls sideways,
a wide table and a long word in a message stay reachable, the drawer and the "⋯" menu work by
keyboard; and axe-core finds nothing serious or critical on any page, in both colour schemes.
Screenshots in test-artifacts/layout-*.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devtools.launch import CHROMIUM, CHROMIUM_ARGS
from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in
from tests.support.seed import seed_data_dir

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1280, 800), "tablet": (768, 1024), "phone": (375, 812)}
AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# The languages the axe check runs in (Accept-Language); add one here when it ships.
LANGUAGES = ["en", "zh-hans"]

TITLE = "Quarterly-" * 12 + " report on everything we measured"
LONG_WORD = "Supercalifragilistic" * 15  # 300 characters, no break opportunity
WIDE_TABLE = "\n".join(
    [
        "| " + " | ".join(f"Column {n}" for n in range(1, 13)) + " |",
        "|" + "---|" * 12,
        "| " + " | ".join(f"value-{n}-measured" for n in range(1, 13)) + " |",
    ]
)
MESSAGE = f"{TITLE}\n\n{WIDE_TABLE}\n\n{LONG_WORD}\n\nhttps://example.com/{'path/' * 40}"

# Pages with the sidebar or of their own, for a staff member ({thread}: the chat made above).
PAGES = [
    "/",
    "/t/{thread}/",
    "/search/?q=Quarterly",
    "/archived/",
    "/t/{thread}/menu/",
    "/tools/",
    "/prompts/",
    "/import/",
    "/usage/",
    "/account/",
    "/account/api-keys/",
    "/admin/usage/",
    "/admin/usage/teams/",
    "/admin/audit-log/",
    "/accounts/password_change/",
]

# Django's admin, in our colours and with our header: checked by axe too.
ADMIN_PAGES = ["/admin/", "/admin/chat/thread/", "/admin/chat/provider/add/", "/admin/auth/user/"]

# Elements of a turn that stick out of it without a sideways scroller around them: unreachable.
UNREACHABLE = """
() => {
  const found = [];
  for (const turn of document.querySelectorAll('#turns article.turn')) {
    const box = turn.getBoundingClientRect();
    if (box.right > window.innerWidth + 1) found.push('a turn is wider than the window');
    for (const element of turn.querySelectorAll('*')) {
      const rect = element.getBoundingClientRect();
      if (!rect.width || !rect.height) continue;
      if (rect.left >= box.left - 1 && rect.right <= box.right + 1) continue;
      let scroller = element.parentElement;
      const scrolls = (e) => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
      while (scroller && scroller !== turn && !scrolls(scroller)) scroller = scroller.parentElement;
      if (!scroller || scroller === turn) {
        const where = `${Math.round(rect.left)}..${Math.round(rect.right)}`;
        found.push(`${element.tagName}.${element.className} ${where} outside ${box.right}`);
      }
    }
  }
  return found;
}
"""

# Elements wider than their scrolling panel (a phone would have to scroll it sideways).
STICKING_OUT = """
(panel) => {
  const edge = panel.getBoundingClientRect().right;
  return Array.from(panel.querySelectorAll('*'))
    .filter((e) => e.getBoundingClientRect().right > edge + 1)
    .map((e) => `${e.tagName}#${e.id}.${e.className} ${e.getBoundingClientRect().right}`);
}
"""

PAGE_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"

AXE_SERIOUS = """
async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ` +
      v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ' ' + n.failureSummary).join(' | '));
}
"""


@pytest.fixture
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_page(browser: Browser, size: str, **context) -> Page:
    width, height = SIZES[size]
    page = browser.new_context(viewport={"width": width, "height": height}, **context).new_page()
    page.set_default_timeout(15_000)
    return page


def start_wide_chat(page: Page, live_app: str, tmp_path) -> int:
    """A staff member logs in and sends MESSAGE; the new chat's id once its answer is done."""
    seed_data_dir(tmp_path, users=[{"username": "ada", "password": PASSWORD, "superuser": True}])
    log_in(page, live_app, "ada")
    return send_wide_message(page)


def send_wide_message(page: Page) -> int:
    box = page.locator("#message")  # by id: its label is translated
    box.fill(MESSAGE)
    box.press("Enter")
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    return int(re.search(r"/t/(\d+)/", page.url).group(1))


def assert_message_reachable(page: Page, size: str) -> None:
    assert page.evaluate(UNREACHABLE) == []
    # Both copies of the table (the user's message and the answer's quote) scroll to their end.
    boxes = page.locator("#turns .table-scroll", has_text="Column 12")
    expect(boxes).to_have_count(2)
    for index in range(2):
        box = boxes.nth(index)
        box.evaluate("element => { element.scrollLeft = element.scrollWidth; }")
        last = box.locator("th").last
        inside = box.evaluate(
            """(element) => {
              const outer = element.getBoundingClientRect();
              const cell = element.querySelector('th:last-child').getBoundingClientRect();
              return cell.right <= outer.right + 1 && cell.left >= outer.left - 1;
            }"""
        )
        assert inside, f"the last column stays out of reach at {size}"
        expect(last).to_have_text("Column 12")
    if size == "phone":
        answer_table = page.locator(".answer .table-scroll", has_text="Column 12")
        assert answer_table.evaluate("e => e.scrollWidth > e.clientWidth + 100")
        # It scrolls from the keyboard too: it takes focus, and the arrow keys move it.
        answer_table.evaluate("element => { element.scrollLeft = 0; }")
        answer_table.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("(e) => e.scrollLeft > 0", arg=answer_table.element_handle())
    # The 300-character word wraps inside its bubble and its answer.
    for word in page.locator("#turns p", has_text=LONG_WORD[:40]).all():
        assert word.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), size


def test_every_page_fits_and_every_message_is_reachable(live_app, browser, tmp_path):
    page = new_page(browser, "desktop")
    thread = start_wide_chat(page, live_app, tmp_path)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for path in PAGES:
            url = path.format(thread=thread)
            page.goto(live_app + url)
            scroll_width, window_width = page.evaluate(PAGE_WIDTH)
            assert scroll_width <= window_width, f"{url} is {scroll_width} px wide at {size}"
        page.goto(f"{live_app}/t/{thread}/")
        assert_message_reachable(page, size)
        # The one-row header: a long title is cut with an ellipsis, the message box shows.
        header = page.locator("#chat-header").bounding_box()
        assert header["height"] < (70 if size != "desktop" else 200), size
        expect(page.get_by_label("Message", exact=True)).to_be_in_viewport()
        expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
        # The built-in demo gateway's model says so beside the picker.
        expect(page.locator("#model-picker .demo-badge")).to_be_visible()
        page.screenshot(path=ARTIFACTS / f"layout-{size}-chat.png")
        if size == "phone":  # the settings panel fits too, opened from the "⋯" menu
            page.get_by_role("button", name="More actions").click()
            page.get_by_role("button", name="Settings").click()
            panel = page.locator("#settings-panel")
            expect(panel.locator("form").first).to_be_visible()
            assert panel.evaluate(STICKING_OUT) == []
            page.screenshot(path=ARTIFACTS / "layout-phone-settings.png")
        page.goto(live_app + "/admin/usage/")
        page.screenshot(path=ARTIFACTS / f"layout-{size}-usage.png", full_page=True)
    page.context.clear_cookies()
    page.goto(live_app + "/accounts/login/")
    scroll_width, window_width = page.evaluate(PAGE_WIDTH)
    assert scroll_width <= window_width  # still the phone's size
    page.screenshot(path=ARTIFACTS / "layout-phone-login.png")


@pytest.mark.parametrize("size", ["phone", "tablet"])
def test_drawer_and_more_menu_by_keyboard(live_app, browser, tmp_path, size):
    page = new_page(browser, size)
    thread = start_wide_chat(page, live_app, tmp_path)
    page.goto(f"{live_app}/t/{thread}/")
    sidebar = page.get_by_role("navigation", name="Chats")
    menu_button = page.get_by_role("button", name="Chats and menu")
    expect(sidebar).to_be_hidden()
    expect(menu_button).to_have_attribute("aria-expanded", "false")

    menu_button.focus()
    page.keyboard.press("Enter")
    expect(sidebar).to_be_visible()
    expect(menu_button).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="New chat")).to_be_in_viewport()
    page.screenshot(path=ARTIFACTS / f"layout-{size}-drawer.png")
    # Focus stays in the drawer, forwards and backwards.
    for key in ["Tab"] * 40 + ["Shift+Tab"] * 45:
        page.keyboard.press(key)
        assert page.evaluate("document.activeElement.closest('#sidebar') !== null"), key
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(menu_button).to_be_focused()
    expect(menu_button).to_have_attribute("aria-expanded", "false")

    # The secondary actions fold behind "⋯".
    more = page.get_by_role("button", name="More actions")
    export = page.get_by_role("link", name="Export .md")
    expect(export).to_be_hidden()
    more.focus()
    page.keyboard.press("Enter")
    expect(more).to_have_attribute("aria-expanded", "true")
    expect(export).to_be_visible()
    expect(page.get_by_role("button", name="Delete chat")).to_be_visible()
    expect(page.get_by_role("button", name="Settings")).to_be_focused()  # the first action
    page.screenshot(path=ARTIFACTS / f"layout-{size}-more.png")
    page.keyboard.press("Escape")
    expect(export).to_be_hidden()
    expect(more).to_be_focused()
    # Settings from the menu opens its panel and closes the menu.
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Settings").click()
    expect(page.locator("#settings-panel form").first).to_be_visible()
    expect(export).to_be_hidden()


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_serious_accessibility_violations(live_app, browser, tmp_path, language):
    assert AXE.exists(), "axe-core is missing: make axe"
    seed_data_dir(tmp_path, users=[{"username": "ada", "password": PASSWORD, "superuser": True}])
    found: list[str] = []
    thread = None
    for scheme in ("light", "dark"):
        # bypass_csp: axe is injected as an inline script, which the app's policy refuses.
        page = new_page(
            browser,
            "desktop",
            color_scheme=scheme,
            bypass_csp=True,
            extra_http_headers={"Accept-Language": language},
        )
        page.goto(live_app + "/accounts/login/")
        found += [f"{scheme} /accounts/login/ {v}" for v in axe(page)]
        log_in(page, live_app, "ada")
        page.wait_for_url(live_app + "/")
        thread = thread or send_wide_message(page)
        for path in PAGES + ADMIN_PAGES:
            page.goto(live_app + path.format(thread=thread))
            found += [f"{scheme} {path} {v}" for v in axe(page)]
        # The chat's panels and the phone layout's drawer and menu, open.
        page.goto(f"{live_app}/t/{thread}/")
        page.locator("button[hx-get$='/settings/']").click()
        expect(page.locator("#settings-panel form").first).to_be_visible()
        found += [f"{scheme} settings panel {v}" for v in axe(page)]
        page.set_viewport_size({"width": 375, "height": 812})
        page.locator(".drawer-button").click()
        found += [f"{scheme} drawer {v}" for v in axe(page)]
        page.keyboard.press("Escape")
        page.locator(".more-button").click()
        found += [f"{scheme} more menu {v}" for v in axe(page)]
        page.screenshot(path=ARTIFACTS / f"layout-axe-{scheme}-{language}.png")
        page.context.close()
    assert not found, "\n".join(found)


def axe(page: Page) -> list[str]:
    page.add_script_tag(path=AXE)
    return page.evaluate(AXE_SERIOUS)

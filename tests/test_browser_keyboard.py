"""Issue 18, item 7, in Chromium: focus goes somewhere sensible after Regenerate, switching
versions and closing Settings/Share (Escape closes them); Ctrl+Shift+O opens a new chat and "?"
(outside a text field) lists the shortcuts; the chat has an <h1> and a rename control of its
own, the conversation is a log; a failed answer is announced once, not by every redraw; the
controls' borders stand out 3:1 from their background in both themes."""

import pytest
from playwright.sync_api import Page, expect

from tests.live_server import ARTIFACTS
from tests.test_browser_composer import start_chat

pytestmark = pytest.mark.browser


# Each visible control whose outline (border, else its own background) is under 3:1 against
# what surrounds it (WCAG 1.4.11), as "tag.class: ratio".
FAINT_CONTROLS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const opaque = (c) => { const v = rgb(c); return v.length === 3 || v[3] > 0; };
  const around = (el) => {
    for (let e = el.parentElement; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (opaque(bg)) return rgb(bg);
    }
    return [255, 255, 255];
  };
  const faint = [];
  document.querySelectorAll("button, input:not([type=hidden]), select, textarea").forEach((el) => {
    const style = getComputedStyle(el);
    if (!el.checkVisibility() || el.disabled || ["checkbox", "radio"].includes(el.type)) return;
    if (style.borderStyle === "none" || parseFloat(style.borderWidth) === 0) {
      if (!opaque(style.backgroundColor)) return;  // a link-like button: text only
    }
    const outside = around(el);
    const border = ratio(rgb(style.borderColor), outside);
    const fill = opaque(style.backgroundColor) ? ratio(rgb(style.backgroundColor), outside) : 1;
    const name = el.tagName + "." + el.className;
    if (Math.max(border, fill) < 3) faint.push(name + ": " + border.toFixed(2));
  });
  return faint;
}"""


def test_focus_escape_and_shortcuts(live_app, browser_page: Page, tmp_path):
    page = browser_page
    start_chat(page, live_app, tmp_path, "First question #chunks=10")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert page.evaluate(FAINT_CONTROLS) == [], scheme
    page.emulate_media(color_scheme="light")
    expect(page.get_by_role("heading", level=1)).to_have_text("First question #chunks=10")
    expect(page.get_by_text("Rename", exact=True)).to_be_visible()
    expect(page.get_by_role("log", name="Conversation")).to_contain_text("First question")

    # Settings, then Escape: the panel closes and the focus is back on Settings.
    settings = page.get_by_role("button", name="Settings")
    settings.click()
    expect(page.get_by_role("button", name="Close settings")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#settings-panel")).to_be_empty()
    expect(settings).to_be_focused()
    # Share, Escape from a field inside it; then its Close button.
    share = page.get_by_role("button", name="Share", exact=True)
    share.click()
    page.get_by_label("Username", exact=True).focus()
    page.keyboard.press("Escape")
    expect(page.locator("#settings-panel")).to_be_empty()
    expect(share).to_be_focused()
    share.click()
    page.locator("#settings-panel").get_by_role("button", name="Close", exact=True).click()
    expect(share).to_be_focused()

    # "?" typed in the message box is text; elsewhere it opens the shortcuts, Escape closes.
    box = page.get_by_label("Message", exact=True)
    box.press("?")
    expect(box).to_have_value("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_hidden()
    box.fill("")
    settings.focus()
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("New chat")
    page.screenshot(path=ARTIFACTS / "keyboard-shortcuts.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(settings).to_be_focused()

    # Regenerate: the focus goes to the new answer, and stays there when it ends.
    page.get_by_role("button", name="Regenerate").click()
    expect(page.get_by_text("2/2")).to_be_visible()
    answer = page.locator("article.turn .message.assistant").last
    expect(answer).to_be_focused()
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    expect(page.locator("article.turn .message.assistant").last).to_be_focused()

    # Previous/Next version: the focus stays on the arrows of the version shown (the usable one).
    page.get_by_role("button", name="Previous version").click()
    expect(page.get_by_text("1/2")).to_be_visible()
    expect(page.get_by_role("button", name="Next version")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text("2/2")).to_be_visible()
    expect(page.get_by_role("button", name="Previous version")).to_be_focused()

    # A failure is said once by the live region; the error text itself is no alert.
    box.fill("This one fails #fault=500")
    box.press("Enter")
    expect(page.locator("article.turn[data-status='failed']")).to_have_count(1)
    expect(page.locator("#announcer")).to_contain_text("Answer failed.")
    expect(page.locator(".turn-error")).to_be_visible()
    expect(page.locator(".turn-error[role=alert], .turn-error [role=alert]")).to_have_count(0)

    # Rename by keyboard: the heading follows, the page stays, the focus is back on Rename.
    rename = page.locator("#thread-title summary")
    rename.focus()
    page.keyboard.press("Enter")
    title = page.get_by_label("Chat title")
    title.fill("Renamed by keyboard")
    title.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Renamed by keyboard")
    expect(page.locator("#thread-title summary")).to_be_focused()
    assert "title=" not in page.url

    # Ctrl+Shift+O: a new chat, from anywhere (here the message box).
    box.focus()
    page.keyboard.press("Control+Shift+O")
    expect(page.get_by_role("heading", level=1, name="New chat")).to_be_visible()

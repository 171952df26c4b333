"""Attaching files in Chromium: the Attach button (a real file chooser), pasting a screenshot,
chips with thumbnails, removing one, sending; the thread shows the thumbnails, which open the
full image. Screenshots in the artifacts."""

from __future__ import annotations

import base64
import hashlib

import pytest
from playwright.sync_api import Page, expect

from tests.attachment_fixtures import image_bytes
from tests.live_server import ARTIFACTS
from tests.support.browser import PASSWORD, log_in
from tests.support.seed import seed_data_dir
from tests.test_browser_csp import REPORT_VIOLATIONS

pytestmark = pytest.mark.browser

PASTE_IMAGE = """
async ([encoded, name]) => {
  const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/png" }));
  const box = document.getElementById("message");
  box.focus();
  const init = { clipboardData: data, bubbles: true, cancelable: true };
  box.dispatchEvent(new ClipboardEvent("paste", init));
}
"""


DROP_FILE = """
([text, name]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type: "text/markdown" }));
  const box = document.getElementById("message");
  for (const type of ["dragenter", "dragover", "drop"]) {
    box.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
  }
}
"""


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"{m.text} {m.location}"))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.expose_function("reportViolation", lambda text: errors.append("csp: " + text))
    page.add_init_script(REPORT_VIOLATIONS)
    return errors


def attach_with_button(page: Page, name: str, data: bytes, mime: str) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("label.attach-button").click()
    chooser.value.set_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def thumbnail_loaded(page: Page, chip) -> bool:
    return chip.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")


def test_attach_paste_remove_send_and_see_the_thumbnails(live_app, browser_page: Page, tmp_path):
    seed_data_dir(tmp_path, users=[{"username": "alice", "password": PASSWORD}])
    page = browser_page
    errors = watch_errors(page)
    log_in(page, live_app, "alice")
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")

    # The Attach button opens the file chooser; the chip shows name, size and thumbnail.
    photo = image_bytes("PNG", (800, 600))
    attach_with_button(page, "holiday.png", photo, "image/png")
    chips = page.locator("#attachment-chips .attachment-chip")
    first = chips.filter(has_text="holiday.png")
    expect(first).to_be_visible()
    expect(first.locator(".attachment-size")).to_contain_text(
        "KB" if len(photo) > 1024 else "bytes"
    )
    expect(first.locator("img")).to_be_visible()
    assert thumbnail_loaded(page, first)

    # A refused file says why; a removed one goes.
    attach_with_button(
        page, "evil.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"
    )
    expect(chips.filter(has_text="evil.svg")).to_contain_text("is not a type that can be attached")
    chips.filter(has_text="evil.svg").get_by_role("button", name="Dismiss").click()
    attach_with_button(page, "notes.txt", b"first line\n", "text/plain")
    chips.filter(has_text="notes.txt").get_by_role("button", name="Remove notes.txt").click()
    expect(chips.filter(has_text="notes.txt")).to_have_count(0)

    # Pasting a screenshot into the message box attaches it too.
    screenshot = image_bytes("PNG", (320, 200))
    page.evaluate(PASTE_IMAGE, [base64.b64encode(screenshot).decode(), "screenshot.png"])
    pasted = chips.filter(has_text="screenshot.png")
    expect(pasted.locator("img")).to_be_visible()
    expect(chips).to_have_count(2)
    # Dropping a file onto the composer attaches it as well.
    page.evaluate(DROP_FILE, ["# Notes\n", "dropped.md"])
    expect(chips.filter(has_text="dropped.md")).to_contain_text("8 bytes")
    page.screenshot(path=ARTIFACTS / "attachments-chips.png")

    page.get_by_label("Message", exact=True).fill("What is in these pictures?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url("**/t/*/")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(1)
    sent = page.locator("article.turn .sent-files .sent-image img")
    expect(sent).to_have_count(2)
    expect(page.locator("article.turn .sent-document")).to_have_text("dropped.md")
    expect(page.locator("#attachment-chips .attachment-chip")).to_have_count(0)
    for index in range(2):
        assert sent.nth(index).evaluate("img => img.complete && img.naturalWidth > 0")

    # A thumbnail opens the full image (served by the app, our re-encoded bytes).
    href = page.locator("article.turn .sent-image").first.get_attribute("href")
    full = page.request.get(live_app + href)
    assert full.status == 200 and full.headers["content-type"] == "image/png"
    assert full.headers["content-disposition"] == 'inline; filename="holiday.png"'
    # The demo gateway names what it received: the image's size and the hash of those bytes.
    digest = hashlib.sha256(full.body()).hexdigest()[:8]
    answer = page.locator("article.turn").first.locator(".answer")
    expect(answer).to_contain_text(f"image: png 800×600 sha256:{digest}")
    expect(answer).to_contain_text("file: dropped.md 8 bytes, first line: # Notes")
    with page.context.expect_page() as opened:
        page.locator("article.turn .sent-image").first.click()
    opened.value.wait_for_load_state()
    assert opened.value.url.endswith(href)
    opened.value.close()

    # In the chat (the socket's composer): attach, send, the new turn shows its file.
    attach_with_button(page, "later.png", image_bytes("PNG", (90, 90)), "image/png")
    expect(chips.filter(has_text="later.png").locator("img")).to_be_visible()
    page.get_by_label("Message", exact=True).fill("And this one")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator("article.turn[data-status='completed']")).to_have_count(2)
    expect(page.locator("article.turn").nth(1).locator(".sent-image img")).to_have_count(1)
    expect(chips).to_have_count(0)
    page.reload()
    expect(page.locator("article.turn .sent-image img")).to_have_count(3)
    page.screenshot(path=ARTIFACTS / "attachments-thread.png", full_page=True)
    page.locator("article.turn").first.screenshot(path=ARTIFACTS / "attachments-first-turn.png")
    assert errors == []


def test_a_large_upload_shows_progress_and_send_waits_for_it(
    live_app, browser_page: Page, tmp_path
):
    seed_data_dir(tmp_path, users=[{"username": "bob", "password": PASSWORD}])
    page = browser_page
    errors = watch_errors(page)
    log_in(page, live_app, "bob")
    page.get_by_label("Model", exact=True).select_option(label="demo-chat")
    # A slow uplink (about 1 MB/s), so a 4 MB file takes a few seconds.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_000_000},
    )
    log_lines = b"".join(b"line %07d of a long log\n" % n for n in range(170_000))
    attach_with_button(page, "server.log", log_lines, "text/plain")
    progress = page.locator("#attachment-chips .uploading progress")
    expect(progress).to_be_visible()
    page.wait_for_function(
        "() => { const p = document.querySelector('#attachment-chips .uploading progress');"
        " return p && p.value > 0 && p.value < 100; }"
    )
    page.screenshot(path=ARTIFACTS / "attachments-progress.png")
    # Send now: the message goes once the upload has finished, with the file.
    page.get_by_label("Message", exact=True).fill("Summarise this log")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#attachment-chips .uploading")).to_have_count(1)  # still uploading
    page.wait_for_url("**/t/*/", timeout=60_000)
    expect(page.locator("article.turn .sent-document")).to_have_text("server.log")
    assert errors == []

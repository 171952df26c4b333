"""Browser figures with Playwright and Debian's Chromium (#8 page of many turns, #9 long tasks).

Used by bench/run.py in its own process (Playwright's sync API), against the running app.
"""

from __future__ import annotations

import re
import statistics
import time

from common import CHROMIUM, CHROMIUM_ARGS

# Long tasks (over 50 ms, the Long Tasks API's threshold) from the page's very start.
LONGTASK_OBSERVER = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longTasks.push({start: entry.startTime, duration: entry.duration});
  }
}).observe({type: "longtask", buffered: true});
"""

# Resolves at the first frame painted after the load event: the page is shown.
SHOWN = """
() => new Promise((resolve) => {
  const done = () => requestAnimationFrame(() => setTimeout(() => resolve(performance.now()), 0));
  if (document.readyState === "complete") done(); else addEventListener("load", done);
})
"""


class Browser:
    """One headless Chromium with one logged-in context (the session cookie of a seeded user)."""

    def __init__(self, app_url: str, cookies: dict[str, str]) -> None:
        from playwright.sync_api import sync_playwright

        self.app_url = app_url
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            self.context = self._browser.new_context(viewport={"width": 1280, "height": 860})
            self.context.add_cookies(
                [{"name": name, "value": value, "url": app_url} for name, value in cookies.items()]
            )
            self.context.add_init_script(LONGTASK_OBSERVER)
            self.context.set_default_timeout(60_000)
        except Exception:
            self._playwright.stop()
            raise

    def close(self) -> None:
        try:
            self.context.close()
            self._browser.close()
        finally:
            self._playwright.stop()

    def time_to_shown(self, path: str, repeats: int, *, warm: bool = False) -> dict:
        """Milliseconds from navigation start until the first frame after ``load`` (median)."""
        page = self.context.new_page()
        try:
            if warm:  # static files into the cache, Chromium's first-navigation costs paid
                page.goto(self.app_url + path, wait_until="load")
            shown, server, longest = [], [], []
            for _ in range(repeats):
                page.goto(self.app_url + path, wait_until="commit")
                shown.append(page.evaluate(SHOWN))
                nav = page.evaluate(
                    "() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return n.responseEnd - n.requestStart; }"
                )
                server.append(nav)
                # The observer starts afresh with each page (an init script).
                long_tasks = page.evaluate("() => window.__longTasks")
                longest.append(max((t["duration"] for t in long_tasks), default=0.0))
            turns = page.locator("article.turn").count()
        finally:
            page.close()
        return {
            "shown_ms": statistics.median(shown),
            "shown_all_ms": shown,
            "response_ms": statistics.median(server),
            "turns": turns,
            # Each load's longest task; the figure is their median (one load on a shared
            # machine is as likely to measure a neighbour's burst as the page).
            "longest_task_ms": statistics.median(longest),
            "longest_task_all_ms": longest,
        }

    def script_bytes(self, path: str) -> dict:
        """The JavaScript a page loads: bytes as decoded (what the browser parses) and as
        transferred from the server (compressed), from the Resource Timing entries."""
        page = self.context.new_page()
        try:
            page.goto(self.app_url + path, wait_until="load")
            scripts = page.evaluate(
                "() => performance.getEntriesByType('resource')"
                ".filter(e => e.initiatorType === 'script')"
                ".map(e => ({decoded: e.decodedBodySize, encoded: e.encodedBodySize}))"
            )
        finally:
            page.close()
        return {
            "scripts": len(scripts),
            "decoded_bytes": sum(s["decoded"] for s in scripts),
            "encoded_bytes": sum(s["encoded"] for s in scripts),
        }

    def stream_long_tasks(self, thread_path: str, message: str, timeout_s: float) -> dict:
        """Send ``message`` from the composer like a person and record long tasks until the
        answer is finished."""
        page = self.context.new_page()
        try:
            page.goto(self.app_url + thread_path, wait_until="load")
            page.wait_for_selector("#conversation[data-socket='open']", timeout=15_000)
            page.evaluate("() => { window.__longTasks = []; }")
            before = page.evaluate("() => performance.now()")
            started = time.perf_counter()
            box = page.locator("#message")
            box.fill(message)
            box.press("Enter")
            # Finished, or refused (the composer's error line says why).
            page.wait_for_function(
                """() => document.querySelector(
                    "article.turn:not([data-status='in_progress'])"
                ) || document.getElementById("composer-error")?.textContent.trim()""",
                timeout=timeout_s * 1000,
            )
            refused = page.locator("#composer-error").text_content() or ""
            if refused.strip() and not page.locator("article.turn").count():
                raise RuntimeError(f"the app refused the message: {refused.strip()}")
            finished = page.evaluate("() => performance.now()") - before
            # The finishing swap is itself a task: give it a frame to be observed.
            page.evaluate(SHOWN)
            seconds = time.perf_counter() - started
            status = page.locator("article.turn").last.get_attribute("data-status")
            body = page.locator("article.turn .answer").last.inner_text()
            tasks = [t for t in page.evaluate("() => window.__longTasks") if t["start"] >= before]
        finally:
            page.close()
        return {
            "status": status,
            "answer_chars": len(body),
            "seconds": seconds,
            "long_tasks": len(tasks),
            "longest_task_ms": max((t["duration"] for t in tasks), default=0.0),
            "long_task_total_ms": sum(t["duration"] for t in tasks),
            # When each long task started, after the message was sent, and when the finished
            # turn was seen: a task at the very end is the final swap of the whole turn.
            "tasks_at_ms": [[round(t["start"] - before), round(t["duration"])] for t in tasks],
            "finished_seen_at_ms": round(finished),
        }


def chunks_for(kilobytes: int) -> int:
    """How many demo-gateway chunks make an answer of about this size (one word per chunk)."""
    filler = (
        "\n\nFiller paragraph 100 keeps this demo answer going for as many "
        "chunks as were asked for, with plain words that are easy to count."
    )
    per_chunk = len(filler) / len(re.findall(r"\s*\S+", filler))
    return round(kilobytes * 1024 / per_chunk)

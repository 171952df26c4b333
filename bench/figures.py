"""The benchmark's figures: one measuring function per scenario, in a registry run in order.

Each ``Scenario`` names the figures it fills; ``run.py --only NAME`` (a scenario name or a figure
id, comma-separated) measures just those, and a scenario runs when one of its figures is
selected. The warm-up runs before any streaming figure. A scenario with a ``script`` (#10 to #17)
runs that standalone bench script's ``measure()`` in a process of its own and needs neither the app
nor the gateway that run.py starts for the others. See bench/README.md for each figure.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common import percentile

if TYPE_CHECKING:
    from run import Bench

API_KEY = "bench-gateway-key"
STREAMING = ("1a", "1b", "2a", "2b", "3", "4a", "4b")


class HarnessError(Exception):
    """The harness could not measure (a process died, a scenario failed to run)."""


@dataclass
class Figure:
    id: str
    name: str
    unit: str
    goal: str
    value: Any = None  # through the app (or the measured case)
    baseline: Any = None  # the same measurement without the app (or the reference case)
    added: Any = None
    met: bool | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def sub(a: dict | None, b: dict | None) -> dict | None:
    """p50/p99 of a minus those of b (unpaired samples: a difference of percentiles)."""
    if not a or not b or a.get("p50") is None or b.get("p50") is None:
        return None
    return {"p50": a["p50"] - b["p50"], "p99": a["p99"] - b["p99"]}


@dataclass
class Run:
    """One benchmark run: the started processes, the selected figures, shared measurements."""

    bench: Bench
    quick: bool
    by_id: dict[str, Figure]
    levels: dict[int, tuple[dict, dict]] = field(default_factory=dict)

    @property
    def c(self) -> dict[str, Any]:
        return self.bench.config

    def log(self, message: str) -> None:
        self.bench.log(message)

    def level(self, n: int) -> tuple[dict, dict]:
        """App and direct results with ``n`` streams (#2, #3 and #4 share them)."""
        if n not in self.levels:
            app, direct = self.bench.pair(n, 0, seconds=self.c["level_seconds"])
            self.levels[n] = (app, direct)
            self.bench.raw[f"streams_{n}"] = {"app": app, "direct": direct}
        return self.levels[n]


@dataclass(frozen=True)
class Scenario:
    name: str  # for --only
    figures: tuple[str, ...]  # the figures it fills (the warm-up: those it prepares)
    measure: Callable[[Run], None]
    preparation: bool = False  # its failure marks only the first selected figure
    script: str = ""  # a standalone bench/<script>.py, run in its own process: no app needed


def warm_up(run: Run) -> None:
    run.log("warm-up (not measured)")
    run.bench.pair(run.c["warmup"], run.c["warmup"], chunks=10, pages=True)


def memory(run: Run) -> None:
    """#7, first: Python rarely returns memory to the OS, so growth is measured on a fresh
    process."""
    c, bench = run.c, run.bench
    run.log(f"#7 memory: {c['idle_sockets']} idle connections, then {c['active_streams']} streams")
    app, direct = bench.memory("app"), bench.memory("direct")
    bench.raw["memory"] = {"app": app, "direct": direct}
    for target, r in (("app", app), ("direct", direct)):
        r["idle_kb_each"] = (r["rss_idle_kb"] - r["rss_base_kb"]) / r["idle"]
        if "rss_active_kb" in r:
            r["active_kb_each"] = (r["rss_active_kb"] - r["rss_idle_kb"]) / r["active"]
        run.log(f"  {target}: {json.dumps({k: v for k, v in r.items() if k != 'target'})}")
    if idle := run.by_id.get("7a"):
        idle.value, idle.baseline = app["idle_kb_each"], direct["idle_kb_each"]
        idle.added = idle.value - idle.baseline
        idle.met = idle.value <= 50
        idle.note = f"{app['idle']} websockets vs {direct['idle']} open SSE streams"
    if active := run.by_id.get("7b"):
        active.value, active.baseline = app.get("active_kb_each"), direct.get("active_kb_each")
        if active.value is not None and active.baseline is not None:
            active.added = active.value - active.baseline
        active.note = f"{app['active']} streams; {app['active_failed']} failed"


def _ttft(f: Figure, app: dict, direct: dict) -> None:
    f.value, f.baseline = app["ttft_probes"], direct["ttft_probes"]
    f.added = sub(f.value, f.baseline)
    f.met = f.added is not None and f.added["p50"] <= 10 and f.added["p99"] <= 50


def one_stream(run: Run) -> None:
    c = run.c
    run.log(f"#1 time to first token, 1 stream ({c['probes']} turns one after another)")
    app, direct = run.bench.pair(0, c["probes"], pages=True)
    run.bench.raw["ttft_1"] = {"app": app, "direct": direct}
    f = run.by_id["1a"]
    _ttft(f, app, direct)
    f.note = f"{c['probes']} turns; failed {app['failed']}/{direct['failed']}"


def ttft_under_load(run: Run) -> None:
    c, n = run.c, run.c["levels"][0]
    run.log(f"#1 time to first token while {n} streams run ({c['probes']} turns)")
    # The background streams last until the probes are done: about 0.3 s per probe.
    seconds = n * c["ramp_ms_per_stream"] / 1000 + 1.5 + 0.3 * c["probes"]
    chunks = round(seconds * 1000 / c["chunk_delay_ms"])
    app, direct = run.bench.pair(n, c["probes"], chunks=chunks)
    run.bench.raw[f"ttft_{n}"] = {"app": app, "direct": direct}
    f = run.by_id["1b"]
    _ttft(f, app, direct)
    f.note = f"{c['probes']} turns one after another while {n} streams run" + (
        "" if app["probes_in_steady_window"] else " (some after streams began ending)"
    )


def _at_level(run: Run, n: int, gap_id: str, cpu_id: str) -> None:
    """#2 (gaps beyond the pace) and #4 (CPU per chunk) at ``n`` streams."""
    run.log(f"#2, #4 at {n} streams of {1000 // run.c['chunk_delay_ms']} chunks/s")
    app, direct = run.level(n)
    if f := run.by_id.get(gap_id):
        f.value, f.baseline = app["gap_excess"], direct["gap_excess"]
        f.added = sub(f.value, f.baseline)
        f.met = f.added is not None and f.added["p99"] <= 50
        f.note = (
            f"{f.value['n']:,} gaps in {app['steady_window_s']:.1f} s with all {n} running; "
            f"failed {app['failed']}"
        )
    if f := run.by_id.get(cpu_id):
        f.value, f.baseline = app["cpu_us_per_chunk"], direct["cpu_us_per_chunk"]
        if f.value is not None and f.baseline is not None:
            f.added = f.value - f.baseline
        f.met = f.value is not None and f.value <= 50
        f.note = f"{app['cpu_s']:.1f} s CPU / {app['chunks_relayed']:,} chunks; baseline = gateway"


def low_level(run: Run) -> None:
    _at_level(run, run.c["levels"][0], "2a", "4a")


def high_level(run: Run) -> None:
    _at_level(run, run.c["levels"][1], "2b", "4b")


def _verdict(app: dict, direct: dict) -> dict[str, Any]:
    added = sub(app["gap_excess"], direct["gap_excess"])
    ok = added is not None and added["p99"] < 100 and app["failed"] == 0
    base_ok = direct["gap_excess"]["p99"] is not None and direct["failed"] == 0
    base_ok = base_ok and direct["gap_excess"]["p99"] < 100
    return {"app_ok": ok, "direct_ok": base_ok, "added_p99": added and added["p99"]}


def _search_levels(run: Run) -> dict[int, dict[str, Any]]:
    """#2's levels (measured now if #2 was not), then #3's search up to the first miss."""
    c = run.c
    tried = {n: _verdict(*run.level(n)) for n in c["levels"]}
    started = time.monotonic()
    for n in sorted(set(c["search"]) - set(tried)):
        if time.monotonic() - started > c["search_budget_s"]:
            run.log(f"#3 search: time budget spent before {n} streams")
            break
        if any(not v["app_ok"] for m, v in tried.items() if m < n):
            break
        run.log(f"#3 search: {n} streams")
        tried[n] = _verdict(*run.level(n))
        if not tried[n]["direct_ok"]:
            run.log(f"#3 search: the baseline itself misses at {n} streams: stopping")
            break
    return tried


def _largest(tried: dict[int, dict[str, Any]], key: str) -> int:
    best = 0
    for n in sorted(tried):
        if not tried[n][key]:
            break
        best = n
    return best


def capacity(run: Run) -> None:
    f = run.by_id["3"]
    tried = _search_levels(run)
    f.value, f.baseline = _largest(tried, "app_ok"), _largest(tried, "direct_ok")
    f.added = None
    f.met = f.value >= 1000
    f.detail = {str(n): v for n, v in sorted(tried.items())}
    levels_text = ", ".join(
        f"{n}:{'ok' if v['app_ok'] else 'miss'}" for n, v in sorted(tried.items())
    )
    f.note = ("levels of #2 only, no search; " if run.quick else "") + levels_text
    if any(not v["direct_ok"] for v in tried.values()):
        f.note += " (the baseline misses too: load generator/gateway limit on this machine)"
    elif tried and all(v["app_ok"] for v in tried.values()):
        f.note += " (every level tried passed: a lower bound)"


def page_server_time(run: Run) -> None:
    import httpx

    c, bench = run.c, run.bench
    run.log(f"#8 page of {c['page_turns']} turns: server time")
    times: dict[str, list[float]] = {}
    with httpx.Client(base_url=bench.app_url, cookies=bench.page_session, trust_env=False) as http:
        for label in ("short", "long"):
            path = f"/t/{bench.seed['pages'][label]}/"
            http.get(path).raise_for_status()  # warm
            times[label] = []
            for _ in range(c["page_repeats"]):
                t = time.perf_counter()
                response = http.get(path)
                times[label].append((time.perf_counter() - t) * 1000)
                response.raise_for_status()
            bench.raw.setdefault("page", {})[f"{label}_bytes"] = len(response.content)
    f = run.by_id["8a"]
    f.value, f.baseline = percentile(times["long"], 50), percentile(times["short"], 50)
    f.added = f.value - f.baseline
    f.met = f.value <= 150
    f.note = f"median of {c['page_repeats']}; {bench.raw['page']['long_bytes'] / 1e6:.1f} MB HTML"
    bench.raw["page"]["server_ms"] = times


def _page_in_browser(run: Run, chrome: Any) -> None:
    pages, repeats = run.bench.seed["pages"], run.c["browser_repeats"]
    # The short page first: it also warms the context's cache of static files.
    short = chrome.time_to_shown(f"/t/{pages['short']}/", repeats, warm=True)
    long = chrome.time_to_shown(f"/t/{pages['long']}/", repeats)
    run.bench.raw["browser_page"] = {"long": long, "short": short}
    if f := run.by_id.get("8b"):
        f.value, f.baseline = long["shown_ms"], short["shown_ms"]
        f.added = f.value - f.baseline
        f.met = f.value <= 1000 and long["longest_task_ms"] <= 50
        f.note = f"{long['turns']} turns shown; longest task {long['longest_task_ms']:.0f} ms"
    if f := run.by_id.get("8c"):
        scripts = chrome.script_bytes(f"/t/{pages['short']}/")
        run.bench.raw["chat_page_scripts"] = scripts
        f.value, f.met = scripts["decoded_bytes"] / 1024, scripts["decoded_bytes"] <= 100 * 1024
        f.note = (
            f"{scripts['scripts']} scripts; {scripts['encoded_bytes'] / 1024:.1f} KB as sent "
            "(compressed)"
        )
    if f := run.by_id.get("8d"):
        # At least 5 loads, even in quick mode: a single load's longest task is mostly noise.
        forty = chrome.time_to_shown(f"/t/{pages['forty']}/", max(5, repeats))
        run.bench.raw["browser_page"]["forty"] = forty
        f.value, f.met = forty["longest_task_ms"], forty["longest_task_ms"] < 50
        each = ", ".join(f"{ms:.0f}" for ms in forty["longest_task_all_ms"])
        f.note = (
            f"{forty['turns']} turns shown (HISTORY_PAGE_TURNS), in {forty['shown_ms']:.0f} ms; "
            f"median of {len(forty['longest_task_all_ms'])} loads ({each} ms)"
        )


def _stream_in_browser(run: Run, chrome: Any, browser: Any) -> None:
    c, pages = run.c, run.bench.seed["pages"]
    results = {}
    for label, kb in (("stream_small", c["answer_kb_baseline"]), ("stream", c["answer_kb"])):
        message = f"stream a long answer #chunks={browser.chunks_for(kb)} #delay=0"
        results[label] = chrome.stream_long_tasks(f"/t/{pages[label]}/", message, 300)
        run.log(f"  {kb} KB answer: {json.dumps(results[label])}")
    run.bench.raw["browser_stream"] = results
    big, small = results["stream"], results["stream_small"]
    f = run.by_id["9"]
    f.value, f.baseline = big["longest_task_ms"], small["longest_task_ms"]
    f.added = f.value - f.baseline
    f.met = big["long_tasks"] == 0 and big["status"] == "completed"
    f.note = (
        f"{big['long_tasks']} tasks > 50 ms ({big['long_task_total_ms']:.0f} ms) over "
        f"{big['answer_chars'] / 1024:.0f} KB in {big['seconds']:.1f} s; baseline "
        f"{c['answer_kb_baseline']} KB answer"
    )


def browser_figures(run: Run) -> None:
    """#8's browser time and #9, in one Chromium (Playwright)."""
    import browser

    which = ", ".join(f"#{fid.rstrip('b')}" for fid in ("8b", "9") if fid in run.by_id)
    run.log(f"{which} in Chromium (Playwright)")
    chrome = browser.Browser(run.bench.app_url, run.bench.page_session)
    try:
        if {"8b", "8c", "8d"} & run.by_id.keys():
            _page_in_browser(run, chrome)
        if "9" in run.by_id:
            _stream_in_browser(run, chrome, browser)
    finally:
        chrome.close()


def queries(run: Run) -> None:
    bench = run.bench
    run.log("#5 database queries per turn (in-process, over a websocket)")
    env = bench.app_env(bench.workdir / "queries")
    small, large = run.c["query_chunks"]
    r = bench.inproc(
        "queries",
        {"gateway": bench.gateway_url, "api_key": API_KEY, "chunks": [small, large]},
        env,
    )
    bench.raw["queries"] = r
    f = run.by_id["5"]
    f.value, f.baseline = r[str(large)]["queries"], r[str(small)]["queries"]
    f.added = f.value - f.baseline
    f.met = f.added == 0  # a constant; its size is in the table
    f.note = f"{large:,} chunks: {r[str(large)]['by_kind']}"


def markdown(run: Run) -> None:
    c = run.c
    small, large = c["markdown_kb"]
    run.log(f"#6 streaming markdown render, {small} KB vs {large} KB (in-process)")
    runs = [
        run.bench.inproc("markdown", {"sizes_kb": [2, small, large]}, os.environ.copy())
        for _ in range(c["markdown_repeats"])
    ]
    best = {kb: min(r[str(kb)]["seconds"] for r in runs) for kb in (small, large)}
    run.bench.raw["markdown"] = runs
    f = run.by_id["6"]
    f.value = best[large] / best[small]
    f.baseline = best[small] * 1000
    f.added = None
    f.met = f.value <= 12
    last = runs[-1][str(large)]
    f.note = (
        f"{large} KB: {best[large] * 1000:.0f} ms over {last['flushes']:,} flushes "
        f"({best[large] / last['flushes'] * 1e6:.0f} µs each, longest "
        f"{last['longest_flush_ms']:.1f} ms); baseline = {small} KB ms"
    )


def _script(run: Run, module: str) -> dict[str, Any]:
    kwargs = run.c["scripts"][module]
    run.log(f"  bench/{module}.py measure({', '.join(f'{k}={v}' for k, v in kwargs.items())})")
    result = run.bench.script(module, kwargs)
    run.bench.raw[module] = result
    run.log(f"  {json.dumps(result)}")
    return result


def _p50_p99(row: dict[str, Any]) -> dict[str, Any]:
    return {"p50": row["p50_ms"], "p99": row["p99_ms"]}


def governance(run: Run) -> None:
    run.log("#10 turn-start checks with team budgets on vs off (bench/governance.py)")
    r = _script(run, "governance")
    f = run.by_id["10"]
    # In µs: the figures are fractions of a millisecond.
    f.value, f.baseline = r["budgets_on"]["median_ms"] * 1000, r["budgets_off"]["median_ms"] * 1000
    f.added = f.value - f.baseline
    # The whole check's medians are noisy on a busy machine: the added work timed alone too.
    f.met = max(f.added / 1000, r["new_checks_on_ms"]) <= r["goal_ms"]
    f.note = (
        f"medians of {run.c['scripts']['governance']['repeat']:,} interleaved checks, "
        f"{r['records']:,} usage records; p95 on {r['budgets_on']['p95_ms']:.3f} / off "
        f"{r['budgets_off']['p95_ms']:.3f} ms; per-user check only "
        f"{r['per_user_only']['median_ms']:.3f} ms; access + budget checks alone "
        f"{r['new_checks_on_ms']:.3f} ms"
    )


def metrics_scrape(run: Run) -> None:
    run.log("#11 /metrics scrape time (bench/metrics_scrape.py)")
    r = _script(run, "metrics_scrape")
    f = run.by_id["11"]
    f.value = _p50_p99(r)
    f.met = r["p99_ms"] < 100
    f.note = f"{r['scrapes']} scrapes through the test client, {r['bytes']:,} bytes each"


def sidebar(run: Run) -> None:
    run.log("#12 sidebar render with many chats (bench/sidebar.py)")
    r = _script(run, "sidebar")
    for fid, key, what in (
        ("12a", "sidebar", "first page rendered (queries + template)"),
        ("12b", "more", "whole request through the test client"),
    ):
        if f := run.by_id.get(fid):
            f.value = _p50_p99(r[key])
            f.met = r[key]["p99_ms"] < r["goal_ms"]
            repeat = run.c["scripts"]["sidebar"]["repeat"]
            f.note = f"{repeat} renders, {what}; {r['rows_rendered']} rows drawn"


def chat_import(run: Run) -> None:
    run.log("#13 import of a ChatGPT export (bench/chat_import.py)")
    r = _script(run, "chat_import")
    f = run.by_id["13"]
    f.value = r["import_seconds"]
    f.note = (
        f"{r['file_mb']} MB, {r['conversations']} conversations, {r['turns']:,} turns: "
        f"{r['turns_per_second']:,} turns/s; median of "
        f"{run.c['scripts']['chat_import']['repeat']}, each into an empty database"
    )
    f.detail = {"turns_per_second": r["turns_per_second"], "file_mb": r["file_mb"]}


def mcp_calls(run: Run) -> None:
    run.log("#14 MCP tool calls in a turn vs direct SDK calls (bench/mcp_calls.py)")
    r = _script(run, "mcp_calls")
    f = run.by_id["14"]
    f.value, f.baseline = r["mcp_call_in_turn_ms"], r["direct_sdk_call_ms"]
    f.added = r["added_per_call_ms"]
    f.note = (
        f"median turn with 5 MCP calls {r['turn_with_5_mcp_calls_ms']:.1f} ms vs 5 built-in "
        f"calculator calls {r['turn_with_5_builtin_calls_ms']:.1f} ms, difference ÷ 5; "
        "baseline = one call_tool on an open SDK session"
    )


def idle_sockets(run: Run) -> None:
    levels = run.c["scripts"]["idle_sockets"]["sockets"]
    run.log(f"#15 idle websockets: {', '.join(map(str, levels))} (bench/idle_sockets.py)")
    r = _script(run, "idle_sockets")
    f = run.by_id["15"]
    top = r["levels"][str(levels[-1])]
    f.value, f.baseline = r["kb_each"], r["levels"][str(levels[0])]["kb_each"]
    f.met = r["kb_each"] <= r["goal_kb_each"] and r["cpu_percent"] < r["goal_cpu_percent"]
    per_level = "; ".join(
        f"{n}: {r['levels'][str(n)]['kb_each']:.1f} KB, {r['levels'][str(n)]['cpu_percent']:.2f} %"
        for n in levels
    )
    f.note = (
        f"{levels[-1]:,} sockets: {top['cpu_percent']:.2f} % of a core over "
        f"{r['idle_seconds']:.0f} s idle; {per_level}; baseline = {levels[0]:,} sockets; "
        f"open files {r['open_files_limit']}"
    )


def two_workers(run: Run) -> None:
    run.log("#16 two workers on PostgreSQL + Redis (bench/workers.py)")
    r = _script(run, "workers")
    f = run.by_id["16"]
    if "skipped" in r:
        f.note = f"not measured: {r['skipped']}"
        return
    cross, relay = r["cross_worker"], r["throughput"]
    f.value, f.baseline = cross["other_worker_ms"], cross["same_worker_ms"]
    f.added = r["added_ms"]
    f.met = f.added is not None and f.added["p50"] <= r["goal_added_p50_ms"]
    per_core = relay["streams_per_core"]
    f.note = (
        f"viewer on the other worker vs on the runner's, each minus the sender's socket; "
        f"{relay['streams']} streams (a viewer each on the other worker): "
        f"{relay['cpu_us_per_chunk'] or 0:.0f} µs CPU per chunk over both workers "
        f"(= {per_core or 0:.0f} streams of 50 chunks/s per core), Redis "
        f"{relay['redis_cpu_s']} s CPU, failed {relay['failed']}"
    )
    f.detail = {"throughput": relay}


def attachments(run: Run) -> None:
    run.log("#17 streams while a 10 MB PDF and a 12 MP photo are uploaded and sent")
    r = _script(run, "attachments")
    f = run.by_id["17"]
    with_uploads, without = r["with_uploads"], r["without_uploads"]
    f.value, f.baseline = with_uploads["p99_ms"], without["p99_ms"]
    f.added = r["added_p99_ms"]
    f.met = f.added <= r["goal_added_p99_ms"] and not with_uploads["failed"]
    f.note = (
        f"p99 inter-chunk delay of {r['streams']} answers at 50 chunks/s (coalesced 40 ms), "
        f"max {with_uploads['max_ms']:.0f} vs {without['max_ms']:.0f} ms; uploads "
        f"{with_uploads['upload_report.pdf_s']:.2f} s (PDF) and "
        f"{with_uploads['upload_photo.jpg_s']:.2f} s (photo), answer "
        f"{with_uploads['send_to_answer_s']:.2f} s after sending; baseline = same app, no uploads"
    )


# In the order they run (#7 first, on fresh processes; the standalone scripts last).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("warm-up", STREAMING, warm_up, preparation=True),
    Scenario("memory", ("7a", "7b"), memory),
    Scenario("ttft", ("1a",), one_stream),
    Scenario("ttft-load", ("1b",), ttft_under_load),
    Scenario("streams-low", ("2a", "4a"), low_level),
    Scenario("streams-high", ("2b", "4b"), high_level),
    Scenario("capacity", ("3",), capacity),
    Scenario("page-server", ("8a",), page_server_time),
    Scenario("browser", ("8b", "8c", "8d", "9"), browser_figures),
    Scenario("queries", ("5",), queries),
    Scenario("markdown", ("6",), markdown),
    Scenario("governance", ("10",), governance, script="governance"),
    Scenario("metrics", ("11",), metrics_scrape, script="metrics_scrape"),
    Scenario("sidebar", ("12a", "12b"), sidebar, script="sidebar"),
    Scenario("import", ("13",), chat_import, script="chat_import"),
    Scenario("mcp", ("14",), mcp_calls, script="mcp_calls"),
    Scenario("idle", ("15",), idle_sockets, script="idle_sockets"),
    Scenario("workers", ("16",), two_workers, script="workers"),
    Scenario("attachments", ("17",), attachments, script="attachments"),
)
# --only names beyond the scenarios' own: groups of figures.
ALIASES: dict[str, tuple[str, ...]] = {"page": ("8a", "8b", "8c", "8d")}


def figure_list(config: dict[str, Any]) -> list[Figure]:
    low, high = config["levels"]
    rate = 1000 // config["chunk_delay_ms"]
    ttft_goal = "added p50 ≤ 10, p99 ≤ 50 ms"
    gap_goal = "added p99 ≤ 50 ms"
    turns = config["page_turns"]
    scripts = config["scripts"]
    metrics, chats, export = scripts["metrics_scrape"], scripts["sidebar"], scripts["chat_import"]
    return [
        Figure("1a", "#1 time to first token, 1 stream", "ms", ttft_goal),
        Figure("1b", f"#1 time to first token, {low} streams", "ms", ttft_goal),
        Figure("2a", f"#2 inter-chunk delay beyond window, {low}x{rate}/s", "ms", gap_goal),
        Figure("2b", f"#2 inter-chunk delay beyond window, {high}x{rate}/s", "ms", gap_goal),
        Figure("3", "#3 max streams with added p99 < 100 ms", "streams", "≥ 1,000"),
        Figure("4a", f"#4 CPU per relayed chunk, {low} streams", "µs", "≤ 50 µs"),
        Figure("4b", f"#4 CPU per relayed chunk, {high} streams", "µs", "≤ 50 µs"),
        Figure("5", "#5 DB queries per turn, 10,000 vs 100 chunks", "queries", "same constant"),
        Figure("6", "#6 markdown render time 100 KB / 10 KB", "x", "≤ 12x"),
        Figure("7a", "#7 RSS per idle websocket", "KB", "≤ 50 KB"),
        Figure("7b", "#7 RSS per active stream", "KB", "(report)"),
        Figure("8a", f"#8 server time, page of {turns} turns", "ms", "≤ 150 ms"),
        Figure(
            "8b", f"#8 browser time to shown, {turns} turns", "ms", "≤ 1,000 ms, no task > 50 ms"
        ),
        Figure("8c", "#8 JavaScript of the chat page (decoded)", "KB", "< 100 KB"),
        Figure("8d", "#8 longest task at load, 40-turn page", "ms", "< 50 ms"),
        Figure(
            "9",
            f"#9 longest main-thread task, {config['answer_kb']} KB stream",
            "ms",
            "none > 50 ms",
        ),
        Figure(
            "10",
            f"#10 turn-start checks, budgets on ({scripts['governance']['records']:,} records)",
            "µs",
            "added ≤ 1,000 µs (1 ms)",
        ),
        Figure(
            "11",
            f"#11 /metrics scrape, {metrics['turns']:,} turns + {metrics['records']:,} records",
            "ms",
            "p99 < 100 ms",
        ),
        Figure("12a", f"#12 sidebar first render, {chats['chats']:,} chats", "ms", "p99 < 100 ms"),
        Figure("12b", f"#12 sidebar next page, {chats['chats']:,} chats", "ms", "p99 < 100 ms"),
        Figure(
            "13",
            f"#13 ChatGPT export import, {export['conversations']} chats of "
            f"{export['exchanges']} exchanges",
            "s",
            "(report)",
        ),
        Figure("14", "#14 MCP tool call inside a turn (5 per turn)", "ms", "(report)"),
        Figure(
            "15",
            f"#15 RSS per idle websocket, {scripts['idle_sockets']['sockets'][-1]:,} sockets",
            "KB",
            "≤ 30 KB and < 2 % of a core",
        ),
        Figure(
            "16",
            "#16 delta to a viewer on the other of 2 workers",
            "ms",
            "added p50 ≤ 5 ms",
        ),
        Figure(
            "17",
            f"#17 p99 inter-chunk delay, {scripts['attachments']['streams']} streams, "
            "uploading 10 MB PDF + 12 MP photo",
            "ms",
            "added p99 ≤ 50 ms",
        ),
    ]


def left_out(config: dict[str, Any]) -> set[str]:
    """Figures a run that names none leaves out in this mode (``scripts_skipped``)."""
    skipped = config["scripts_skipped"]
    return {fid for s in SCENARIOS if s.script in skipped and s.script for fid in s.figures}


def needs_app(figures: list[Figure]) -> bool:
    """Whether any of these figures needs the processes run.py starts (not only scripts)."""
    ids = {f.id for f in figures}
    return any(not s.script and ids & set(s.figures) for s in SCENARIOS if not s.preparation)


def only_names() -> list[str]:
    """Everything ``--only`` accepts: figure ids, scenario names and aliases."""
    measured = [s for s in SCENARIOS if not s.preparation]
    return [*(fid for s in measured for fid in s.figures), *(s.name for s in measured), *ALIASES]


def selected_ids(only: str) -> set[str]:
    """The figure ids ``--only a,b`` selects (figure ids, scenario names or aliases)."""
    by_name = {s.name: s.figures for s in SCENARIOS} | ALIASES
    chosen: set[str] = set()
    for name in filter(None, (part.strip() for part in only.split(","))):
        if name not in only_names():
            raise SystemExit(f"--only {name!r}: choose from {', '.join(only_names())}")
        chosen.update(by_name.get(name, (name,)))
    return chosen


def measure(bench: Bench, quick: bool, figures: list[Figure]) -> None:
    """Every scenario one of whose figures is in ``figures``; a broken one marks its figures
    and the others still run."""
    run = Run(bench, quick, {f.id: f for f in figures})
    for scenario in SCENARIOS:
        mine = [fid for fid in scenario.figures if fid in run.by_id]
        if not mine:
            continue  # not selected (--only)
        try:
            scenario.measure(run)
        except Exception as exc:  # one broken scenario must not hide the other figures
            text = f"{type(exc).__name__}: {exc}"
            run.log(f"  ERROR in {', '.join(mine)}: {text}")
            if not isinstance(exc, HarnessError):
                run.log(traceback.format_exc())
            for fid in mine[:1] if scenario.preparation else mine:
                run.by_id[fid].error = text.splitlines()[0][:200]
            bench.raw.setdefault("errors", []).append({"figures": mine, "error": text})

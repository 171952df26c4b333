"""What the long tasks of a chat page's load are made of: a Chromium trace, summarised.

    .venv/bin/python bench/page_trace.py                 # the 40-turn page, 3 loads
    .venv/bin/python bench/page_trace.py --page long --loads 5 --save /tmp/trace.json

Starts the quick benchmark's processes and seed (bench/run.py's ``Bench``), opens the seeded
page in Debian's Chromium with the DevTools timeline categories recorded, and prints, for each
load, every main-thread task over ``--threshold`` ms with its time split by kind (script
compile/run, HTML parse, style, layout, paint, other) and the biggest items inside it (which
script, which event handler). Not a figure: a profile to decide what to change (figure #8d is
the number). ``--save`` writes each load's raw trace (open it in DevTools' Performance panel);
``--first`` makes each load the page's first in a fresh browser context (as #8d's first load).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CHROMIUM, CHROMIUM_ARGS

CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8.execute",
    "v8",
    "blink",
    "loading",
    "toplevel",
]

# The kind of an event's self time: the first rule matching its name, else its parent's kind.
KIND_RULES = [
    ("GC", ("MinorGC", "MajorGC", "V8.GC", "BlinkGC", "V8.GCScavenger")),
    ("script compile", ("v8.compile", "V8.Compile", "V8.Parse", "v8.parseOnBackground",
                        "V8.DeserializeContext")),
    ("script run", ("EvaluateScript", "v8.run", "FunctionCall", "V8.Execute", "EventDispatch",
                    "TimerFire", "FireAnimationFrame", "RunMicrotasks", "v8.callFunction",
                    "FireIdleCallback")),
    ("style", ("UpdateLayoutTree", "Document::updateStyle", "Document::recalcStyle",
               "Document::rebuildLayoutTree", "Blink.Style", "ParseAuthorStyleSheet",
               "Document::updateStyleInvalidation")),
    ("layout", ("Layout", "LocalFrameView::performLayout", "Blink.Layout", "InlineNode::")),
    ("paint", ("Paint", "PrePaint", "UpdateLayerTree", "Layerize", "CompositeLayers", "Commit",
               "Blink.Paint", "Blink.PrePaint", "Blink.CompositingInputs", "Blink.Layerize")),
    ("other", ("Document::FinishedParsing", "Document::UpdateStyleAndLayout")),
    ("parse HTML", ("ParseHTML", "HTMLDocumentParser", "HTMLParserScriptRunner",
                    "HTMLPreloadScanner")),
]


def _kind(name: str, inherited: str) -> str:
    for kind, prefixes in KIND_RULES:
        if name.startswith(prefixes):
            return kind
    return inherited


def _main_thread(events: list[dict]) -> tuple[int, int]:
    """(pid, tid) of the renderer main thread that ran the app's page: the one that ran htmx
    (a new tab's own browser pages run in other renderers)."""
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e["args"].get("name") == "CrRendererMain"
    }
    score: dict[tuple[int, int], float] = defaultdict(float)
    for e in events:
        thread = (e.get("pid"), e.get("tid"))
        if thread not in mains:
            continue
        data = (e.get("args") or {}).get("data") or {}
        if "htmx" in str(data.get("url", "")):
            score[thread] += 1e9
        if e.get("name") == "RunTask":
            score[thread] += e.get("dur", 0)
    return max(score, key=score.get)


def _complete_events(events: list[dict], thread: tuple[int, int]) -> list[dict]:
    """The thread's events as complete ('X') events, B/E pairs joined, sorted for nesting."""
    out, open_ = [], defaultdict(list)
    for e in events:
        if (e.get("pid"), e.get("tid")) != thread:
            continue
        if e.get("ph") == "X" and "dur" in e:
            out.append(e)
        elif e.get("ph") == "B":
            open_[e["name"]].append(e)
        elif e.get("ph") == "E" and open_[e["name"]]:
            begin = open_[e["name"]].pop()
            out.append(begin | {"ph": "X", "dur": e["ts"] - begin["ts"]})
    out.sort(key=lambda e: (e["ts"], -e["dur"]))
    return out


def _label(e: dict) -> str:
    """The event's name with what it ran: a script's URL, a function's or event's name."""
    data = e.get("args", {}).get("data", {}) or e.get("args", {}).get("beginData", {}) or {}
    detail = data.get("url") or data.get("functionName") or data.get("type") or ""
    if "/" in detail:
        detail = detail.rsplit("/", 1)[-1].split("?")[0]
    if e["name"] == "FunctionCall" and data.get("functionName") and data.get("url"):
        where = data["url"].rsplit("/", 1)[-1]
        detail = f"{data['functionName']} @ {where}:{data.get('lineNumber')}"
    return f"{e['name']}({detail})" if detail else e["name"]


# Wrappers with one child that say nothing more than it: skipped in the printed tree.
WRAPPERS = {
    "ThreadControllerImpl::RunTask", "v8.callFunction", "Blink.ForcedStyleAndLayout.UpdateTime",
    "LocalFrameView::UpdateStyleAndLayout", "Blink.Layout.UpdateTime", "LocalFrameView::layout",
    "Blink.Style.UpdateTime", "Document::updateStyle", "V8.GCScavenger", "AsyncTask Run",
    "PendingScript::ExecuteScriptBlock",
}


def summarise_task(task: dict, inner: list[dict], tree_ms: float = 1.0) -> dict[str, Any]:
    """Self time under ``task`` by kind, and its tree of events of at least ``tree_ms`` (ms)."""
    kinds: dict[str, float] = defaultdict(float)
    tree: list[tuple[int, str, float, float]] = []  # (depth, label, inclusive ms, CPU ms)
    stack: list[list] = []  # [event, children's total, printed depth, kind]

    def close(entry: list) -> None:
        event, children, _, kind = entry
        kinds[kind] += max(event["dur"] - children, 0) / 1000
        if stack:
            stack[-1][1] += event["dur"]

    forced = [0, 0.0]  # style/layout updates forced before the frame: count, ms
    end = task["ts"] + task["dur"]
    for e in [task, *(e for e in inner if e is not task and task["ts"] <= e["ts"] < end)]:
        while stack and e["ts"] >= stack[-1][0]["ts"] + stack[-1][0]["dur"]:
            close(stack.pop())
        depth = stack[-1][2] if stack else 0
        kind = _kind(e["name"], stack[-1][3] if stack else "other")
        if e["dur"] >= tree_ms * 1000 and e["name"] not in WRAPPERS:
            depth += 1
            tree.append((depth, _label(e), e["dur"] / 1000, e.get("tdur", 0) / 1000))
        if e["name"] == "Blink.ForcedStyleAndLayout.UpdateTime" and e["dur"] >= 200:
            forced[0] += 1
            forced[1] += e["dur"] / 1000
        stack.append([e, 0, depth, kind])
    while stack:
        close(stack.pop())
    return {
        "ms": task["dur"] / 1000,
        "cpu_ms": task.get("tdur", 0) / 1000,
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "tree": tree,
        "forced": forced,
    }


def long_tasks(trace: dict, threshold_ms: float) -> list[dict[str, Any]]:
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    thread = _main_thread(events)
    inner = _complete_events(events, thread)
    tasks = [e for e in inner if e["name"] == "RunTask" and e["dur"] / 1000 >= threshold_ms]
    # A RunTask nested in another (rare) is part of the outer one.
    outer = [t for t in tasks if not any(
        o is not t and o["ts"] <= t["ts"] and t["ts"] + t["dur"] <= o["ts"] + o["dur"]
        for o in tasks
    )]
    return [summarise_task(t, inner) for t in outer]


def trace_loads(app_url: str, cookies: dict[str, str], path: str, loads: int,
                threshold_ms: float, save: Path | None, warm_path: str | None = None,
                ) -> list[list[dict[str, Any]]]:
    """Trace ``loads`` loads of ``path``. With ``warm_path``, each is the first load of a new tab
    in a fresh context whose cache another page warmed (as figure #8d's first load); otherwise
    the page itself is loaded twice first and then again in the same tab."""
    from browser import LONGTASK_OBSERVER, SHOWN
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = None
        for n in range(loads):
            if page is None or warm_path:
                if page is not None:
                    page.context.close()
                context = browser.new_context(viewport={"width": 1280, "height": 860})
                context.add_cookies(
                    [{"name": k, "value": v, "url": app_url} for k, v in cookies.items()]
                )
                context.add_init_script(LONGTASK_OBSERVER)
                page = context.new_page()
                for _ in range(2):  # static files into the cache, as figure #8 does
                    page.goto(app_url + (warm_path or path), wait_until="load")
                    page.evaluate(SHOWN)
                if warm_path:  # a new tab, as figure #8 opens for each page: a new renderer
                    page.close()
                    page = context.new_page()
            browser.start_tracing(page=page, categories=CATEGORIES)
            page.goto(app_url + path, wait_until="commit")
            page.evaluate(SHOWN)
            page.wait_for_timeout(300)  # late tasks (idle callbacks, the socket's open)
            raw = browser.stop_tracing()
            if save:
                save.with_suffix(f".{n + 1}.json").write_bytes(raw)
            tasks = long_tasks(json.loads(raw), threshold_ms)
            seen = page.evaluate("() => window.__longTasks")
            tasks.append({"observed": [[round(t["start"]), round(t["duration"])] for t in seen]})
            results.append(tasks)
        browser.close()
    return results


def cpu_profile_loads(app_url: str, cookies: dict[str, str], path: str, loads: int) -> list[dict]:
    """V8's sampling profile of each load (CDP Profiler, 100 µs): self and total ms per function."""
    from browser import SHOWN
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.add_cookies([{"name": k, "value": v, "url": app_url} for k, v in cookies.items()])
        page = context.new_page()
        page.goto(app_url + path, wait_until="load")
        page.evaluate(SHOWN)
        cdp = context.new_cdp_session(page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 100})
        for _ in range(loads):
            cdp.send("Profiler.start")
            page.goto(app_url + path, wait_until="commit")
            page.evaluate(SHOWN)
            page.wait_for_timeout(300)
            results.append(_functions(cdp.send("Profiler.stop")["profile"]))
        browser.close()
    return results


def _functions(profile: dict) -> dict[str, Any]:
    """Self and total (inclusive) milliseconds per function of a CDP CPU profile."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    hits: dict[int, float] = defaultdict(float)
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        hits[node_id] += delta / 1000
    own: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)

    def name(node: dict) -> str:
        f = node["callFrame"]
        where = f["url"].rsplit("/", 1)[-1].split("?")[0]
        return f"{f['functionName'] or '(anonymous)'} @ {where}:{f['lineNumber'] + 1}" if where \
            else f["functionName"] or "(anonymous)"

    for node_id, ms in hits.items():
        own[name(nodes[node_id])] += ms
        seen, walk = set(), node_id
        while walk is not None:
            label = name(nodes[walk])
            if label not in seen:
                total[label] += ms
                seen.add(label)
            walk = parent.get(walk)
    return {
        "self": sorted(own.items(), key=lambda kv: -kv[1])[:25],
        "total": sorted(total.items(), key=lambda kv: -kv[1])[:40],
    }


def print_load(n: int, tasks: list[dict[str, Any]], max_depth: int) -> None:
    print(f"load {n}: {len(tasks)} task(s) over the threshold")
    for t in tasks:
        if "observed" in t:
            print(f"  the page's longtask observer: [start, duration] ms {t['observed']}")
            continue
        kinds = ", ".join(f"{k} {v:.1f}" for k, v in t["kinds"].items() if v >= 0.5)
        print(f"  task {t['ms']:.1f} ms ({t['cpu_ms']:.1f} ms CPU): {kinds}; "
              f"{t['forced'][0]} forced style/layout updates ({t['forced'][1]:.1f} ms)")
        for depth, label, ms, cpu in t["tree"]:
            if depth <= max_depth:
                print(f"    {'  ' * depth}{ms:5.1f} ({cpu:4.1f} CPU)  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", default="forty", choices=["forty", "long", "short"])
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=20.0, help="ms; default 20")
    parser.add_argument("--save", type=Path, help="write each load's trace (NAME.N.json)")
    parser.add_argument(
        "--first", action="store_true",
        help="each load is the page's first, in a fresh context warmed by the one-turn page",
    )
    parser.add_argument("--depth", type=int, default=6, help="depth of the printed tree")
    parser.add_argument("--js", action="store_true", help="also V8's CPU profile of each load")
    args = parser.parse_args()

    import run

    with tempfile.TemporaryDirectory(prefix="switchboard-trace-") as work:
        bench = run.Bench(run.QUICK, Path(work), lambda line: print(line, file=sys.stderr))
        try:
            bench.start()
            path = f"/t/{bench.seed['pages'][args.page]}/"
            warm = f"/t/{bench.seed['pages']['short']}/" if args.first else None
            loads = trace_loads(bench.app_url, bench.page_session, path, args.loads,
                                args.threshold, args.save, warm)
            profiles = cpu_profile_loads(bench.app_url, bench.page_session, path, args.loads) \
                if args.js else []
        finally:
            bench.stop()
    for n, tasks in enumerate(loads, 1):
        print_load(n, tasks, args.depth)
    for n, functions in enumerate(profiles, 1):
        print(f"load {n}, JavaScript (CPU profile): self ms")
        for label, ms in functions["self"]:
            if ms >= 0.5:
                print(f"  {ms:6.1f}  {label}")
        print("  total ms")
        for label, ms in functions["total"]:
            if ms >= 1:
                print(f"  {ms:6.1f}  {label}")


if __name__ == "__main__":
    main()

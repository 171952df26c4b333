"""Switchboard's benchmark: every speed and memory claim as a figure, each with its baseline.

    .venv/bin/python bench/run.py            # full: a few minutes
    .venv/bin/python bench/run.py --quick    # under a minute (CI runs this)
    .venv/bin/python bench/run.py --only page  # figure 8 alone (the long thread page)

Starts, as separate processes on 127.0.0.1: the demo gateway (demo_gateway, paced), the
app under Daphne with production-like settings (DEBUG off, its own SQLite file, the mounted demo
gateway off, a provider pointing at the separate gateway), and the load generator
(bench/loadgen.py: logs in, opens threads, streams over websockets like the browser; or reads
the gateway's SSE directly: the baseline). Prints a table and writes bench/results/*.json.
Exits non-zero only when the harness itself breaks, never because a goal is missed.
See bench/README.md for what each figure means exactly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    PASSWORD,
    PYTHON,
    ROOT,
    Process,
    free_port,
    percentile,
    wait_http,
)

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
API_KEY = "bench-gateway-key"

# The two modes. Rates are per stream; a chunk is one SSE delta event from the gateway.
FULL: dict[str, Any] = {
    "users": 8,
    "warmup": 8,
    "chunk_delay_ms": 20,  # 50 chunks/s per stream
    "stream_seconds": 5.0,  # nominal length of a background stream
    "level_seconds": 5.0,  # the same, in #2's and #3's scenarios
    "ramp_ms_per_stream": 2.0,  # streams start spread out, not in one burst
    "probes": 30,  # sequential turns whose time to first token is measured
    "levels": [100, 500],  # #1's second level and #2's two levels
    "search": [25, 50, 200, 300, 700, 1000, 1400, 2000],  # #3, with the levels above
    "search_budget_s": 150,
    "idle_sockets": 1000,
    "active_streams": 100,
    "page_turns": 500,
    "page_repeats": 5,
    "browser_repeats": 3,
    "answer_kb": 100,
    "answer_kb_baseline": 10,
    "markdown_kb": [10, 100],
    "markdown_repeats": 3,
    "query_chunks": [100, 10_000],
}
QUICK: dict[str, Any] = FULL | {
    "users": 2,
    "warmup": 3,
    "stream_seconds": 1.5,
    "level_seconds": 3.0,
    "probes": 6,
    "levels": [20, 50],
    "search": [],  # #3 reports the best of the levels above instead of searching
    "search_budget_s": 0,
    "idle_sockets": 100,
    "active_streams": 20,
    "page_turns": 100,
    "page_repeats": 3,
    "browser_repeats": 1,
    "markdown_repeats": 1,
}


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


def pcts(values: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, dict) and "p50" in value:
        return f"p50 {fmt(value['p50'])} / p99 {fmt(value['p99'])}{(' ' + unit) if unit else ''}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".rstrip()


def sub(a: dict | None, b: dict | None) -> dict | None:
    """p50/p99 of a minus those of b (unpaired samples: a difference of percentiles)."""
    if not a or not b or a.get("p50") is None or b.get("p50") is None:
        return None
    return {"p50": a["p50"] - b["p50"], "p99": a["p99"] - b["p99"]}


class Bench:
    def __init__(self, config: dict[str, Any], workdir: Path, log: Callable[[str], None]):
        self.config = config
        self.workdir = workdir
        self.log = log
        self.processes: list[Process] = []
        self.gateway: Process | None = None
        self.app: Process | None = None
        self.seed: dict[str, Any] = {}
        self.sessions: list[dict[str, str]] = []
        self.page_session: dict[str, str] = {}
        self._next_thread = 0
        self._phase = 0
        self.window_s = float(os.environ.get("STREAM_COALESCE_SECONDS", "0.04"))
        self.raw: dict[str, Any] = {}

    # -- processes -------------------------------------------------------------------------

    def app_env(self, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DEMO_"))}
        for name in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH"):
            env.pop(name, None)
        return env | {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SWITCHBOARD_DATA_DIR": str(data_dir),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE": "0",  # plain HTTP on loopback
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEMO_GATEWAY_ENABLED": "0",
            "STREAM_COALESCE_SECONDS": str(self.window_s),
            # A few seeded users stand in for many people: no per-user message rate limit.
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> None:
        config = self.config
        gateway_port, app_port = free_port(), free_port()
        self.gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
        self.app_url = f"http://127.0.0.1:{app_port}"
        self.env = self.app_env(self.workdir / "app") | {"PORT": str(app_port)}

        self.log("migrating and seeding a fresh database")
        self._run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], self.env, 120)
        threads = self._threads_needed()
        out = self._run(
            [
                PYTHON,
                str(BENCH / "seed.py"),
                f"--gateway={self.gateway_url}",
                f"--api-key={API_KEY}",
                f"--users={config['users']}",
                f"--threads={threads}",
                f"--page-turns={config['page_turns']}",
                f"--password={PASSWORD}",
            ],
            self.env,
            120,
        )
        self.seed = json.loads(out)

        gateway_env = {k: v for k, v in self.env.items() if not k.startswith("DJANGO_")}
        gateway_env["DEMO_RECORD_REQUESTS"] = "0"
        self.gateway = self._spawn(
            "demo gateway",
            [
                PYTHON,
                "-m",
                "demo_gateway",
                "--port",
                str(gateway_port),
                "--api-key",
                API_KEY,
                "--delay-ms",
                str(config["chunk_delay_ms"]),
            ],
            gateway_env,
        )
        self.app = self._spawn(
            "app (daphne)",
            [
                PYTHON,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(app_port),
                "project.asgi:application",
            ],
            self.env,
        )
        auth = {"Authorization": f"Bearer {API_KEY}"}
        if wait_http(self.gateway_url + "/models", self.gateway, headers=auth).status_code != 200:
            raise HarnessError("the demo gateway does not list its models")
        if wait_http(self.app_url + "/accounts/login/", self.app).status_code != 200:
            raise HarnessError("the app's login page does not answer 200")
        self.log(f"gateway pid {self.gateway.pid}, app pid {self.app.pid}; logging users in")
        result = self.loadgen(
            "login",
            {
                "app_url": self.app_url,
                "users": [*self.seed["users"], self.seed["page_user"]],
                "password": PASSWORD,
            },
            timeout=120,
        )
        *self.sessions, self.page_session = result["sessions"]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        slug = name.split()[0].replace("(", "")
        process = Process(name, argv, env, self.workdir / f"{slug}.log")
        self.processes.append(process)
        return process

    def _run(self, argv: list[str], env: dict[str, str], timeout: float) -> str:
        done = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise HarnessError(f"{' '.join(argv[:3])} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def _check_alive(self) -> None:
        for process in (self.gateway, self.app):
            if process is not None and not process.alive():
                raise HarnessError(f"the {process.name} died:\n{process.log_tail()}")

    def _threads_needed(self) -> int:
        c = self.config
        streams = c["warmup"] * 2 + c["probes"] * (1 + len(c["levels"]))
        streams += sum(c["levels"]) + c["levels"][0] + c["idle_sockets"] + sum(c["search"])
        return streams + 50

    def threads(self, n: int) -> list[list[int]]:
        """``n`` threads not used by any earlier turn: each measured turn starts a thread."""
        pool = self.seed["threads"]
        if self._next_thread + n > len(pool):
            raise HarnessError(f"out of seeded threads ({len(pool)})")
        chosen = pool[self._next_thread : self._next_thread + n]
        self._next_thread += n
        return chosen

    def loadgen(self, command: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        self._check_alive()
        self._phase += 1
        spec_path = self.workdir / f"phase{self._phase}-{command}.json"
        out_path = self.workdir / f"phase{self._phase}-{command}-result.json"
        spec_path.write_text(json.dumps(spec))
        try:
            done = subprocess.run(
                [PYTHON, str(BENCH / "loadgen.py"), command, str(spec_path), str(out_path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"the load generator ({command}) ran over {timeout:.0f} s") from exc
        if done.returncode != 0:
            self._check_alive()
            raise HarnessError(f"the load generator ({command}) failed:\n{done.stderr[-3000:]}")
        return json.loads(out_path.read_text())

    # -- scenarios -------------------------------------------------------------------------

    def streams(
        self,
        target: str,
        n: int,
        probes: int,
        *,
        chunks: int | None = None,
        seconds: float | None = None,
        pages: bool = False,
    ) -> dict[str, Any]:
        """N background streams (plus sequential probes once they all run), app or direct."""
        c = self.config
        delay = c["chunk_delay_ms"]
        ramp = n * c["ramp_ms_per_stream"] / 1000
        if chunks is None:
            seconds = c["stream_seconds"] if seconds is None else seconds
            chunks = max(10, round((seconds + ramp) * 1000 / delay))
        threads = self.threads(n + probes) if target == "app" else self._labels(n + probes)
        spec = {
            "target": target,
            "app_url": self.app_url,
            "gateway_url": self.gateway_url,
            "api_key": API_KEY,
            "sessions": self.sessions,
            "threads": threads[:n],
            "probe_threads": threads[n:],
            "streams": n,
            "chunks": chunks,
            "probe_chunks": 3,
            "delay_ms": delay,
            "ramp_s": ramp,
            "open_pages": pages,
            "pid": (self.app if target == "app" else self.gateway).pid,
        }
        budget = ramp + chunks * delay / 1000 * 4 + 60 + 5 * probes + n * 0.05 + 60
        result = self.loadgen("streams", spec, timeout=budget)
        self._refused(result["failures"])
        self._summarize_streams(result)
        return result

    @staticmethod
    def _refused(failures: list[dict[str, Any]]) -> None:
        """A turn the app refused (rate limit, quota, validation) means the harness set the app
        up wrong: nothing would be measured, so say so instead of printing empty figures."""
        for failure in failures:
            if failure["status"] == "rejected":
                raise HarnessError(f"the app refused a turn: {failure['error']}")

    def _labels(self, n: int) -> list[list[int]]:
        return [[i, 0] for i in range(n)]  # the direct target needs no thread, only an index

    def _summarize_streams(self, r: dict[str, Any]) -> None:
        delay = r["delay_ms"]
        expected = max(self.window_s * 1000, delay) if r["target"] == "app" else delay
        r["ttft_background"] = pcts([s["ttft_ms"] for s in r["background"] if s["ttft_ms"]])
        r["ttft_probes"] = pcts([s["ttft_ms"] for s in r["probes"] if s["ttft_ms"]])
        r["gap_excess"] = pcts([g - expected for g in r.pop("gaps_ms")])
        r["cpu_us_per_chunk"] = (
            r["cpu_s"] / r["chunks_relayed"] * 1e6 if r["chunks_relayed"] else None
        )
        label = f"{r['target']:6} {r['streams']:4} streams"
        ttft = r["ttft_probes"] if r["probes"] else r["ttft_background"]
        self.log(
            f"  {label}: first delta {fmt(ttft, 'ms')}, gap beyond pace "
            f"{fmt(r['gap_excess'], 'ms')}, CPU {fmt(r['cpu_us_per_chunk'], 'µs')}/chunk, "
            f"failed {r['failed']}"
        )
        # Keep the record small: per-stream lists only for failures.
        r["background"] = len(r["background"])
        r["probes"] = len(r["probes"])

    def pair(self, n: int, probes: int, **kw) -> tuple[dict, dict]:
        """The same scenario through the app and directly (the baseline), app first."""
        return self.streams("app", n, probes, **kw), self.streams("direct", n, probes, **kw)

    def memory(self, target: str) -> dict[str, Any]:
        c = self.config
        idle, active = c["idle_sockets"], c["active_streams"]
        delay = c["chunk_delay_ms"]
        chunks = round(c["stream_seconds"] * 1000 / delay)
        threads = self.threads(idle) if target == "app" else self._labels(idle + active)
        spec = {
            "target": target,
            "app_url": self.app_url,
            "gateway_url": self.gateway_url,
            "api_key": API_KEY,
            "sessions": self.sessions,
            "threads": threads,
            "idle": idle,
            "active": active,
            "chunks": chunks,
            "delay_ms": delay,
            "pid": (self.app if target == "app" else self.gateway).pid,
        }
        result = self.loadgen("memory", spec, timeout=chunks * delay / 1000 * 4 + idle * 0.1 + 180)
        self._refused(result["failures"])
        return result

    def inproc(self, command: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        out = self._run([PYTHON, str(BENCH / "inproc.py"), command, json.dumps(spec)], env, 300)
        return json.loads(out)


# -- the figures ---------------------------------------------------------------------------------


def measure(bench: Bench, quick: bool, figures: list[Figure]) -> None:
    c = bench.config
    log = bench.log
    low, high = c["levels"]
    by_id = {f.id: f for f in figures}

    def guarded(ids: list[str], fn: Callable[[], None]) -> None:
        if not any(fid in by_id for fid in ids):
            return  # not selected (--only)
        try:
            fn()
        except Exception as exc:  # one broken scenario must not hide the other figures
            text = f"{type(exc).__name__}: {exc}"
            log(f"  ERROR in {', '.join(ids)}: {text}")
            if not isinstance(exc, HarnessError):
                log(traceback.format_exc())
            for fid in ids:
                by_id[fid].error = text.splitlines()[0][:200]
            bench.raw.setdefault("errors", []).append({"figures": ids, "error": text})

    def warm_up() -> None:
        log("warm-up (not measured)")
        bench.pair(c["warmup"], c["warmup"], chunks=10, pages=True)

    guarded(["1a"], warm_up)

    # #7 first: Python rarely returns memory to the OS, so growth is measured on a fresh process.
    def memory() -> None:
        log(f"#7 memory: {c['idle_sockets']} idle connections, then {c['active_streams']} streams")
        app, direct = bench.memory("app"), bench.memory("direct")
        bench.raw["memory"] = {"app": app, "direct": direct}
        for target, r in (("app", app), ("direct", direct)):
            r["idle_kb_each"] = (r["rss_idle_kb"] - r["rss_base_kb"]) / r["idle"]
            if "rss_active_kb" in r:
                r["active_kb_each"] = (r["rss_active_kb"] - r["rss_idle_kb"]) / r["active"]
            log(f"  {target}: {json.dumps({k: v for k, v in r.items() if k != 'target'})}")
        idle, active = by_id["7a"], by_id["7b"]
        idle.value, idle.baseline = app["idle_kb_each"], direct["idle_kb_each"]
        idle.added = idle.value - idle.baseline
        idle.met = idle.value <= 50
        idle.note = f"{app['idle']} websockets vs {direct['idle']} open SSE streams"
        active.value, active.baseline = app.get("active_kb_each"), direct.get("active_kb_each")
        if active.value is not None and active.baseline is not None:
            active.added = active.value - active.baseline
        active.note = f"{app['active']} streams; {app['active_failed']} failed"

    guarded(["7a", "7b"], memory)

    def one_stream() -> None:
        log(f"#1 time to first token, 1 stream ({c['probes']} turns one after another)")
        app, direct = bench.pair(0, c["probes"], pages=True)
        bench.raw["ttft_1"] = {"app": app, "direct": direct}
        f = by_id["1a"]
        f.value, f.baseline = app["ttft_probes"], direct["ttft_probes"]
        f.added = sub(f.value, f.baseline)
        f.met = f.added is not None and f.added["p50"] <= 10 and f.added["p99"] <= 50
        f.note = f"{c['probes']} turns; failed {app['failed']}/{direct['failed']}"

    guarded(["1a"], one_stream)

    def ttft_under_load(n: int) -> None:
        log(f"#1 time to first token while {n} streams run ({c['probes']} turns)")
        # The background streams last until the probes are done: about 0.3 s per probe.
        seconds = n * c["ramp_ms_per_stream"] / 1000 + 1.5 + 0.3 * c["probes"]
        chunks = round(seconds * 1000 / c["chunk_delay_ms"])
        app, direct = bench.pair(n, c["probes"], chunks=chunks)
        bench.raw[f"ttft_{n}"] = {"app": app, "direct": direct}
        f = by_id["1b"]
        f.value, f.baseline = app["ttft_probes"], direct["ttft_probes"]
        f.added = sub(f.value, f.baseline)
        f.met = f.added is not None and f.added["p50"] <= 10 and f.added["p99"] <= 50
        f.note = f"{c['probes']} turns one after another while {n} streams run" + (
            "" if app["probes_in_steady_window"] else " (some after streams began ending)"
        )

    guarded(["1b"], lambda: ttft_under_load(low))

    levels: dict[int, tuple[dict, dict]] = {}

    def at_level(n: int, gap_id: str, cpu_id: str) -> None:
        log(f"#2, #4 at {n} streams of {1000 // c['chunk_delay_ms']} chunks/s")
        app, direct = bench.pair(n, 0, seconds=c["level_seconds"])
        levels[n] = (app, direct)
        bench.raw[f"streams_{n}"] = {"app": app, "direct": direct}
        f = by_id[gap_id]
        f.value, f.baseline = app["gap_excess"], direct["gap_excess"]
        f.added = sub(f.value, f.baseline)
        f.met = f.added is not None and f.added["p99"] <= 50
        f.note = (
            f"{f.value['n']:,} gaps in {app['steady_window_s']:.1f} s with all {n} running; "
            f"failed {app['failed']}"
        )
        f = by_id[cpu_id]
        f.value, f.baseline = app["cpu_us_per_chunk"], direct["cpu_us_per_chunk"]
        if f.value is not None and f.baseline is not None:
            f.added = f.value - f.baseline
        f.met = f.value is not None and f.value <= 50
        f.note = f"{app['cpu_s']:.1f} s CPU / {app['chunks_relayed']:,} chunks; baseline = gateway"

    guarded(["2a", "4a"], lambda: at_level(low, "2a", "4a"))
    guarded(["2b", "4b"], lambda: at_level(high, "2b", "4b"))

    def capacity() -> None:
        f = by_id["3"]
        tried: dict[int, dict[str, Any]] = {}

        def verdict(n: int, app: dict, direct: dict) -> dict[str, Any]:
            added = sub(app["gap_excess"], direct["gap_excess"])
            ok = added is not None and added["p99"] < 100 and app["failed"] == 0
            base_ok = direct["gap_excess"]["p99"] is not None and direct["failed"] == 0
            base_ok = base_ok and direct["gap_excess"]["p99"] < 100
            return {"app_ok": ok, "direct_ok": base_ok, "added_p99": added and added["p99"]}

        for n, (app, direct) in levels.items():
            tried[n] = verdict(n, app, direct)
        started = time.monotonic()
        for n in sorted(set(c["search"]) - set(levels)):
            if time.monotonic() - started > c["search_budget_s"]:
                log(f"#3 search: time budget spent before {n} streams")
                break
            below = [v for m, v in tried.items() if m < n]
            if any(not v["app_ok"] for v in below):
                break
            log(f"#3 search: {n} streams")
            app, direct = bench.pair(n, 0, seconds=c["level_seconds"])
            tried[n] = verdict(n, app, direct)
            bench.raw[f"streams_{n}"] = {"app": app, "direct": direct}
            if not tried[n]["direct_ok"]:
                log(f"#3 search: the baseline itself misses at {n} streams: stopping")
                break

        def largest(key: str) -> int:
            best = 0
            for n in sorted(tried):
                if not tried[n][key]:
                    break
                best = n
            return best

        f.value, f.baseline = largest("app_ok"), largest("direct_ok")
        f.added = None
        f.met = f.value >= 1000
        f.detail = {str(n): v for n, v in sorted(tried.items())}
        levels_text = ", ".join(
            f"{n}:{'ok' if v['app_ok'] else 'miss'}" for n, v in sorted(tried.items())
        )
        f.note = ("levels of #2 only, no search; " if quick else "") + levels_text
        if any(not v["direct_ok"] for v in tried.values()):
            f.note += " (the baseline misses too: load generator/gateway limit on this machine)"
        elif tried and all(v["app_ok"] for v in tried.values()):
            f.note += " (every level tried passed: a lower bound)"

    guarded(["3"], capacity)

    def pages() -> None:
        import httpx

        log(f"#8 page of {c['page_turns']} turns: server time")
        cookies = bench.page_session
        times: dict[str, list[float]] = {}
        with httpx.Client(base_url=bench.app_url, cookies=cookies, trust_env=False) as http:
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
        f = by_id["8a"]
        f.value, f.baseline = percentile(times["long"], 50), percentile(times["short"], 50)
        f.added = f.value - f.baseline
        f.met = f.value <= 150
        f.note = (
            f"median of {c['page_repeats']}; {bench.raw['page']['long_bytes'] / 1e6:.1f} MB HTML"
        )
        bench.raw["page"]["server_ms"] = times

    guarded(["8a"], pages)

    def browser_figures() -> None:
        import browser

        which = ", ".join(f"#{fid.rstrip('b')}" for fid in ("8b", "9") if fid in by_id)
        log(f"{which} in Chromium (Playwright)")
        chrome = browser.Browser(bench.app_url, bench.page_session)
        try:
            pages = bench.seed["pages"]
            if "8b" in by_id:
                # The short page first: it also warms the context's cache of static files.
                short = chrome.time_to_shown(
                    f"/t/{pages['short']}/", c["browser_repeats"], warm=True
                )
                long = chrome.time_to_shown(f"/t/{pages['long']}/", c["browser_repeats"])
                bench.raw["browser_page"] = {"long": long, "short": short}
                f = by_id["8b"]
                f.value, f.baseline = long["shown_ms"], short["shown_ms"]
                f.added = f.value - f.baseline
                f.met = f.value <= 1000
                f.note = (
                    f"{long['turns']} turns shown; longest task {long['longest_task_ms']:.0f} ms"
                )
            if "9" not in by_id:
                return

            results = {}
            for label, kb in (
                ("stream_small", c["answer_kb_baseline"]),
                ("stream", c["answer_kb"]),
            ):
                message = f"stream a long answer #chunks={browser.chunks_for(kb)} #delay=0"
                results[label] = chrome.stream_long_tasks(f"/t/{pages[label]}/", message, 300)
                log(f"  {kb} KB answer: {json.dumps(results[label])}")
            bench.raw["browser_stream"] = results
            big, small = results["stream"], results["stream_small"]
            f = by_id["9"]
            f.value, f.baseline = big["longest_task_ms"], small["longest_task_ms"]
            f.added = f.value - f.baseline
            f.met = big["long_tasks"] == 0 and big["status"] == "completed"
            f.note = (
                f"{big['long_tasks']} tasks > 50 ms ({big['long_task_total_ms']:.0f} ms) over "
                f"{big['answer_chars'] / 1024:.0f} KB in {big['seconds']:.1f} s; baseline "
                f"{c['answer_kb_baseline']} KB answer"
            )
        finally:
            chrome.close()

    guarded(["8b", "9"], browser_figures)

    def queries() -> None:
        log("#5 database queries per turn (in-process, over a websocket)")
        env = bench.app_env(bench.workdir / "queries")
        small, large = c["query_chunks"]
        r = bench.inproc(
            "queries",
            {"gateway": bench.gateway_url, "api_key": API_KEY, "chunks": [small, large]},
            env,
        )
        bench.raw["queries"] = r
        f = by_id["5"]
        f.value, f.baseline = r[str(large)]["queries"], r[str(small)]["queries"]
        f.added = f.value - f.baseline
        f.met = f.added == 0  # a constant; its size is in the table
        f.note = f"{large:,} chunks: {r[str(large)]['by_kind']}"

    guarded(["5"], queries)

    def markdown() -> None:
        small, large = c["markdown_kb"]
        log(f"#6 streaming markdown render, {small} KB vs {large} KB (in-process)")
        runs = [
            bench.inproc("markdown", {"sizes_kb": [2, small, large]}, os.environ.copy())
            for _ in range(c["markdown_repeats"])
        ]
        best = {kb: min(r[str(kb)]["seconds"] for r in runs) for kb in (small, large)}
        bench.raw["markdown"] = runs
        f = by_id["6"]
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

    guarded(["6"], markdown)


def figure_list(config: dict[str, Any]) -> list[Figure]:
    low, high = config["levels"]
    rate = 1000 // config["chunk_delay_ms"]
    ttft_goal = "added p50 ≤ 10, p99 ≤ 50 ms"
    return [
        Figure("1a", "#1 time to first token, 1 stream", "ms", ttft_goal),
        Figure("1b", f"#1 time to first token, {low} streams", "ms", ttft_goal),
        Figure(
            "2a", f"#2 inter-chunk delay beyond window, {low}x{rate}/s", "ms", "added p99 ≤ 50 ms"
        ),
        Figure(
            "2b", f"#2 inter-chunk delay beyond window, {high}x{rate}/s", "ms", "added p99 ≤ 50 ms"
        ),
        Figure("3", "#3 max streams with added p99 < 100 ms", "streams", "≥ 1,000"),
        Figure("4a", f"#4 CPU per relayed chunk, {low} streams", "µs", "≤ 50 µs"),
        Figure("4b", f"#4 CPU per relayed chunk, {high} streams", "µs", "≤ 50 µs"),
        Figure("5", "#5 DB queries per turn, 10,000 vs 100 chunks", "queries", "same constant"),
        Figure("6", "#6 markdown render time 100 KB / 10 KB", "x", "≤ 12x"),
        Figure("7a", "#7 RSS per idle websocket", "KB", "≤ 50 KB"),
        Figure("7b", "#7 RSS per active stream", "KB", "(report)"),
        Figure("8a", f"#8 server time, page of {config['page_turns']} turns", "ms", "≤ 150 ms"),
        Figure("8b", f"#8 browser time to shown, {config['page_turns']} turns", "ms", "≤ 1,000 ms"),
        Figure(
            "9",
            f"#9 longest main-thread task, {config['answer_kb']} KB stream",
            "ms",
            "none > 50 ms",
        ),
    ]


# --only NAME: the figures measured (every other scenario, the warm-up included, is skipped).
ONLY: dict[str, set[str]] = {"page": {"8a", "8b"}}


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "baseline", "added", "goal", "met?")]
    for f in figures:
        if f.error:
            rows.append((f.name, "ERROR", "", "", f.goal, f.error[:60]))
            continue
        rows.append(
            (
                f.name,
                fmt(f.value, f.unit),
                fmt(f.baseline, "ms" if f.id == "6" else f.unit),
                fmt(f.added, f.unit),
                f.goal,
                "—" if f.met is None else ("yes" if f.met else "NO"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {f.name}: {f.note}" for f in figures if f.note and not f.error]
    return "\n".join([*lines, "", "notes:", *notes])


def main() -> int:
    parser = argparse.ArgumentParser(description="Switchboard's benchmark (see bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="small version, under a minute")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, specs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--only",
        choices=sorted(ONLY),
        help="measure only these figures (page: #8, the long thread's server and browser time)",
    )
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    config = QUICK if args.quick else FULL
    mode = ("quick" if args.quick else "full") + (f"-{args.only}" if args.only else "")
    started = time.monotonic()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    figures = figure_list(config)
    if args.only:
        figures = [f for f in figures if f.id in ONLY[args.only]]
    bench = Bench(config, workdir, log)
    fatal = ""
    log(f"{mode} benchmark; work dir {workdir}")
    try:
        bench.start()
        measure(bench, args.quick, figures)
    except Exception as exc:
        fatal = f"{type(exc).__name__}: {exc}"
        log(f"FATAL: {fatal}")
        if not isinstance(exc, HarnessError):
            log(traceback.format_exc())
    finally:
        bench.stop()
    wall = time.monotonic() - started

    print()
    print(f"Switchboard benchmark ({mode}), {wall:.0f} s, {os.cpu_count()} CPUs")
    print(table(figures))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result = {
        "mode": mode,
        "started": stamp,
        "wall_s": wall,
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "config": config | {"coalesce_window_s": bench.window_s},
        "fatal": fatal,
        "figures": [f.__dict__ for f in figures],
        "raw": bench.raw,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{stamp}-{mode}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    errors = [f for f in figures if f.error]
    if args.keep or fatal or errors:
        print(f"work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if fatal or errors:
        print(f"harness errors: {fatal or ''} {[f.id for f in errors]}".strip())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Switchboard's benchmark: every speed and memory claim as a figure, each with its baseline.

    .venv/bin/python bench/run.py            # full: a few minutes
    .venv/bin/python bench/run.py --quick    # under a minute (CI runs this)
    .venv/bin/python bench/run.py --only page  # figure 8 alone (the long thread page)
    .venv/bin/python bench/run.py --quick --only 5,memory  # any figures: ids or scenario names

Starts, as separate processes on 127.0.0.1: the demo gateway (demo_gateway, paced), the
app under Daphne with production-like settings (DEBUG off, its own SQLite file, the mounted demo
gateway off, a provider pointing at the separate gateway), and the load generator
(bench/loadgen.py: logs in, opens threads, streams over websockets like the browser; or reads
the gateway's SSE directly: the baseline); then the standalone scripts (#10 to #17, each
``measure()`` in its own process on its own throwaway database). Prints a table and writes
bench/results/*.json.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    PASSWORD,
    PYTHON,
    ROOT,
    Process,
    daphne_command,
    demo_gateway_command,
    free_port,
    percentile,
    wait_http,
)
from figures import (
    API_KEY,
    Figure,
    HarnessError,
    figure_list,
    left_out,
    measure,
    needs_app,
    only_names,
    selected_ids,
)

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"

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
    # The standalone scripts (#10 to #17): measure()'s arguments, each run in its own process.
    "scripts": {
        "governance": {"records": 20_000, "repeat": 2000},
        "metrics_scrape": {"turns": 10_000, "records": 100_000, "repeat": 50},
        "sidebar": {"chats": 10_000, "repeat": 200},
        "chat_import": {"conversations": 300, "exchanges": 30, "repeat": 3},
        "mcp_calls": {},  # no sizes: 5 turns of 5 calls, 25 direct calls
        "idle_sockets": {"sockets": [1000, 5000], "idle_seconds": 30},
        # Needs PostgreSQL + Redis (.ci/services.sh, left running by `make test-scaleout`).
        "workers": {"streams": 200, "chunks": 250, "probes": 10},
        # The streams must outlast the uploads (a few seconds): 300 chunks at 50/s.
        "attachments": {"streams": 20, "chunks": 300},
    },
    "scripts_skipped": [],  # left out of a run that names no figures (--only runs them)
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
    # Smaller sizes: each script still builds and migrates its own database (about 3 s).
    "scripts": FULL["scripts"]
    | {
        "governance": {"records": 2000, "repeat": 200},
        "metrics_scrape": {"turns": 1000, "records": 10_000, "repeat": 10},
        "sidebar": {"chats": 1000, "repeat": 20},
        "chat_import": {"conversations": 30, "exchanges": 30, "repeat": 1},
        "idle_sockets": {"sockets": [100, 500], "idle_seconds": 5},
        "workers": {"streams": 20, "chunks": 50, "probes": 3},
    },
    # Left out to keep quick mode short (about 5 s each, mostly migrations; mcp_calls has no
    # smaller size): --quick --only metrics,import,mcp runs them, at the sizes above.
    "scripts_skipped": ["metrics_scrape", "chat_import", "mcp_calls", "idle_sockets"],
}


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
            # Every measured turn is a thread's first: with titles on, each would add a title
            # request to the gateway and a sidebar redraw, which are not relaying.
            "AUTO_TITLES": "0",
            # #2 to #4 measure the relay itself, so no line of waiting turns unless asked
            # (MAX_RUNNING_TURNS=200 make bench: at 500 streams, 300 wait and start in order).
            "MAX_RUNNING_TURNS": os.environ.get("MAX_RUNNING_TURNS", "0"),
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
            demo_gateway_command(gateway_port, api_key=API_KEY, delay_ms=config["chunk_delay_ms"]),
            gateway_env,
        )
        self.app = self._spawn(
            "app (daphne)",
            daphne_command(app_port),
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

    def _run(
        self,
        argv: list[str],
        env: dict[str, str],
        timeout: float,
        cwd: Path = ROOT,
        label: str = "",
    ) -> str:
        label = label or " ".join(argv[:3])
        try:
            done = subprocess.run(
                argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"{label} ran over {timeout:.0f} s") from exc
        if done.returncode != 0:
            raise HarnessError(f"{label} failed:\n{done.stderr[-3000:]}")
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

    def _spec(self, target: str) -> dict[str, Any]:
        """What every load generator phase needs: where to go, as whom, which process to watch."""
        return {
            "target": target,
            "app_url": self.app_url,
            "gateway_url": self.gateway_url,
            "api_key": API_KEY,
            "sessions": self.sessions,
            "pid": (self.app if target == "app" else self.gateway).pid,
        }

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
        spec = self._spec(target) | {
            "threads": threads[:n],
            "probe_threads": threads[n:],
            "streams": n,
            "chunks": chunks,
            "probe_chunks": 3,
            "delay_ms": delay,
            "ramp_s": ramp,
            "open_pages": pages,
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
        spec = self._spec(target) | {
            "threads": threads,
            "idle": idle,
            "active": active,
            "chunks": chunks,
            "delay_ms": delay,
        }
        result = self.loadgen("memory", spec, timeout=chunks * delay / 1000 * 4 + idle * 0.1 + 180)
        self._refused(result["failures"])
        return result

    def inproc(self, command: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        out = self._run([PYTHON, str(BENCH / "inproc.py"), command, json.dumps(spec)], env, 300)
        return json.loads(out)

    def script(self, module: str, kwargs: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
        """``bench/<module>.py``'s ``measure(**kwargs)`` in a process of its own (each script sets
        Django up on a throwaway SQLite database of its own), its dict back as JSON."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DEMO_"))}
        for name in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "DJANGO_SETTINGS_MODULE"):
            env.pop(name, None)
        env |= {"LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        code = (
            "import importlib, json, sys; m = importlib.import_module(sys.argv[1]); "
            "print(); print(json.dumps(m.measure(**json.loads(sys.argv[2]))))"
        )
        argv = [PYTHON, "-c", code, module, json.dumps(kwargs)]
        out = self._run(argv, env, timeout, cwd=BENCH, label=f"bench/{module}.py measure()")
        return json.loads(out.strip().splitlines()[-1])


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


def write_results(
    out: Path,
    mode: str,
    stamp: str,
    wall: float,
    config: dict[str, Any],
    bench: Bench,
    figures: list[Figure],
    fatal: str,
) -> None:
    """The run as JSON: figures, raw numbers, configuration, machine and commit."""
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))


def main() -> int:
    parser = argparse.ArgumentParser(description="Switchboard's benchmark (see bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="small version, under a minute")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, specs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="measure only these figures: ids, scenario names or page (#8's two figures); "
        f"one of {', '.join(only_names())}",
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
        chosen = selected_ids(args.only)
        figures = [f for f in figures if f.id in chosen]
    else:
        figures = [f for f in figures if f.id not in left_out(config)]
    bench = Bench(config, workdir, log)
    fatal = ""
    log(f"{mode} benchmark; work dir {workdir}")
    try:
        if needs_app(figures):  # the standalone scripts (#10 to #17) start what they need
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
    out = args.out / f"{stamp}-{mode}.json"
    write_results(out, mode, stamp, wall, config, bench, figures, fatal)
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

"""The benchmark's load generator: real users over real sockets, like the browser, or the baseline.

Two targets, same code path for timing so the difference is what the app adds:

``app``     logs in with the login form, opens thread pages, connects each thread's websocket
            (session cookie + Origin, as htmx's ws extension does) and sends the composer's JSON;
            reads the HTML fragments the server pushes (turn created, coalesced deltas, finished).
``direct``  POSTs the same request the app sends upstream to the demo gateway's /v1/responses
            and reads its SSE stream (no app in between): the baseline.

Subcommands (each reads a JSON spec and writes a JSON result; ``bench/run.py`` drives them):

``login``   log the seeded users in, return their cookies
``streams`` N background streams (ramped in), plus sequential probe turns while all N run
``memory``  open N idle connections, then stream on some of them; RSS of a process throughout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_seconds, rss_kb

now = time.perf_counter

# What the server's fragments look like (chat/fragments.py): markers, not a full HTML parse.
CREATED = 'id="turns" hx-swap-oob="beforeend"'
DELTA = '-tail" hx-swap-oob="innerHTML"'
REPLACED = re.compile(r'<article hx-swap-oob="true" id="turn-\d+" class="turn" data-status="(\w+)"')
NOTICE = re.compile(r'<div id="composer-error"[^>]*>(.*?)</div>', re.S)
SSE_DELTA = b"event: response.output_text.delta\n"
SSE_END = b"event: response.completed\n"
SSE_FAILED = (b"event: response.incomplete\n", b"event: response.failed\n")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

CONNECT_CONCURRENCY = 32  # Daphne's listen backlog is small; a connect storm only measures that


class LoadError(Exception):
    """The harness could not do what it was asked (not: the app was slow)."""


@dataclass
class Stream:
    """One turn, timed at the client. Times are perf_counter seconds."""

    index: int
    thread_id: int
    message: str
    sent: float = 0.0
    first: float | None = None
    deltas: list[float] = field(default_factory=list)
    done: float | None = None
    status: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "completed" and self.first is not None


# -- the app, like the browser ------------------------------------------------------------------


def _http(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        trust_env=False,
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=2000),
    )


async def login(app_url: str, username: str, password: str) -> dict[str, str]:
    """The login form, as a person fills it in; returns the cookies the browser would keep."""
    async with _http(app_url) as client:
        page = await client.get("/accounts/login/")
        match = CSRF_INPUT.search(page.text)
        if page.status_code != 200 or match is None:
            raise LoadError(f"login page: HTTP {page.status_code}, no CSRF token")
        response = await client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": match.group(1),
                "next": "/",
            },
            headers={"Referer": app_url + "/accounts/login/"},
        )
        if response.status_code != 302 or "sessionid" not in client.cookies:
            raise LoadError(f"login as {username} failed: HTTP {response.status_code}")
        home = await client.get("/")  # where the browser lands
        if home.status_code != 200:
            raise LoadError(f"home page after login: HTTP {home.status_code}")
        return {name: client.cookies[name] for name in ("sessionid", "csrftoken")}


class AppSocket:
    """One browser tab on a thread: the page (optionally), then its websocket."""

    def __init__(self, app_url: str, cookies: dict[str, str], thread_id: int) -> None:
        self.app_url = app_url
        self.cookies = cookies
        self.thread_id = thread_id
        self.ws: ClientConnection | None = None

    async def open(self, http: httpx.AsyncClient | None) -> None:
        if http is not None:
            page = await http.get(f"/t/{self.thread_id}/", cookies=self.cookies)
            if page.status_code != 200:
                raise LoadError(f"thread page {self.thread_id}: HTTP {page.status_code}")
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        ws_url = self.app_url.replace("http://", "ws://", 1) + f"/ws/threads/{self.thread_id}/"
        self.ws = await connect(
            ws_url,
            origin=self.app_url,
            additional_headers={"Cookie": cookie},
            user_agent_header="switchboard-bench",
            proxy=None,
            compression=None,
            max_size=64 * 1024 * 1024,
            max_queue=1024,
            open_timeout=30,
            ping_interval=None,
        )

    async def run(self, stream: Stream, deadline: float) -> None:
        """Send the composer's message and read fragments until the turn is finished."""
        assert self.ws is not None
        payload = json.dumps(
            {
                "action": "send",
                "message": stream.message,
                # What htmx's ws-send adds to the form's values.
                "HEADERS": {
                    "HX-Request": "true",
                    "HX-Trigger": "composer",
                    "HX-Trigger-Name": None,
                    "HX-Target": "composer",
                    "HX-Current-URL": f"{self.app_url}/t/{self.thread_id}/",
                },
            }
        )
        stream.sent = now()
        await self.ws.send(payload)
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                async for raw in self.ws:
                    t = now()
                    text = raw if isinstance(raw, str) else raw.decode()
                    if DELTA in text:
                        if stream.first is None:
                            stream.first = t
                        stream.deltas.append(t)
                    finished = REPLACED.search(text)
                    if finished and finished.group(1) != "in_progress":
                        stream.done, stream.status = t, finished.group(1)
                        return
                    notice = NOTICE.search(text)
                    if notice and notice.group(1).strip():
                        stream.status, stream.error = "rejected", notice.group(1).strip()
                        return
            stream.status, stream.error = "closed", "the websocket closed mid-answer"
        except TimeoutError:
            stream.status, stream.error = "timeout", "no end of the answer before the deadline"

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


# -- the gateway directly (baseline) -------------------------------------------------------------


class DirectStream:
    """The app's upstream request, made by the load generator itself."""

    def __init__(self, http: httpx.AsyncClient, api_key: str) -> None:
        self.http = http
        self.api_key = api_key

    async def run(
        self,
        stream: Stream,
        deadline: float,
        *,
        hold: asyncio.Event | None = None,
        opened: asyncio.Event | None = None,
    ) -> None:
        """Stream one answer; with ``hold``, stop reading after the first delta (an idle open
        stream) until ``hold`` is set. ``opened`` is set at the first delta or at the end."""
        try:
            await self._run(stream, deadline, hold, opened)
        finally:
            if opened is not None:
                opened.set()

    async def _run(
        self,
        stream: Stream,
        deadline: float,
        hold: asyncio.Event | None,
        opened: asyncio.Event | None,
    ) -> None:
        body = {
            "model": "demo-chat",
            "input": [{"role": "user", "content": stream.message}],
            "stream": True,
        }
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "text/event-stream"}
        stream.sent = now()
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                async with self.http.stream(
                    "POST", "responses", json=body, headers=headers
                ) as response:
                    if response.status_code != 200:
                        stream.status = "failed"
                        stream.error = f"HTTP {response.status_code}"
                        return
                    buffer = b""
                    async for chunk in response.aiter_raw():
                        t = now()
                        *events, buffer = (buffer + chunk).split(b"\n\n")
                        for event in events:
                            if event.startswith(SSE_DELTA):
                                if stream.first is None:
                                    stream.first = t
                                    if hold is not None:
                                        if opened is not None:
                                            opened.set()
                                        await hold.wait()  # the stream stays open, unread
                                        return
                                stream.deltas.append(t)
                            elif event.startswith(SSE_END):
                                stream.done, stream.status = t, "completed"
                                return
                            elif event.startswith(SSE_FAILED):
                                stream.done, stream.status = t, "failed"
                                return
                    stream.status, stream.error = "closed", "the stream ended early"
        except TimeoutError:
            stream.status, stream.error = "timeout", "no end of the answer before the deadline"
        except httpx.HTTPError as exc:
            stream.status, stream.error = "failed", f"{type(exc).__name__}: {exc}"


# -- measuring a process ------------------------------------------------------------------------


class Sampler:
    """RSS of a process every ``every`` seconds, and its CPU time at marks."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.peak_kb = 0
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task | None = None

    def mark(self) -> dict[str, float]:
        return {"t": now(), "cpu": cpu_seconds(self.pid), "rss_kb": rss_kb(self.pid)}

    async def _loop(self) -> None:
        while True:
            rss = rss_kb(self.pid)
            self.peak_kb = max(self.peak_kb, rss)
            self.samples.append((now(), rss))
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.peak_kb = 0
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def settle_rss(pid: int, seconds: float = 1.0) -> int:
    """RSS after a short pause (lets connection set-up garbage be freed)."""
    await asyncio.sleep(seconds)
    return rss_kb(pid)


# -- the scenarios ------------------------------------------------------------------------------


async def _bounded(coros, limit: int):
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


def _message(label: str, index: int, chunks: int, delay_ms: int) -> str:
    return f"bench {label} {index}: tell me a story #chunks={chunks} #delay={delay_ms}"


def _stream_record(s: Stream) -> dict[str, Any]:
    return {
        "thread": s.thread_id,
        "status": s.status,
        "error": s.error,
        "ttft_ms": None if s.first is None else (s.first - s.sent) * 1000,
        "deltas": len(s.deltas),
    }


def _steady_gaps(streams: list[Stream]) -> tuple[list[float], float, float]:
    """Gaps between consecutive deltas while every stream was running (after the last one's
    first delta, before the first one ended); falls back to all gaps if that window is empty."""
    ok = [s for s in streams if s.ok and s.done is not None]
    if not ok:
        return [], 0.0, 0.0
    start = max(s.first for s in ok)
    end = min(s.done for s in ok)
    gaps = [
        b - a
        for s in ok
        for a, b in zip(s.deltas, s.deltas[1:], strict=False)
        if a >= start and b <= end
    ]
    if not gaps:
        gaps = [b - a for s in ok for a, b in zip(s.deltas, s.deltas[1:], strict=False)]
    return [g * 1000 for g in gaps], start, end


async def run_streams(spec: dict[str, Any]) -> dict[str, Any]:
    target = spec["target"]
    n = spec["streams"]
    chunks, delay_ms = spec["chunks"], spec["delay_ms"]
    ramp = spec.get("ramp_s", 0.0)
    threads = spec["threads"]
    probe_threads = spec.get("probe_threads", [])
    probe_chunks = spec.get("probe_chunks", 3)
    pid = spec["pid"]
    if len(threads) < n:
        raise LoadError(f"{n} streams need {n} threads, got {len(threads)}")
    stream_seconds = chunks * delay_ms / 1000
    deadline = time.monotonic() + ramp + stream_seconds * 4 + 60 + 5 * len(probe_threads)
    sampler = Sampler(pid)
    background = [
        Stream(i, tid, _message("stream", i, chunks, delay_ms))
        for i, (tid, _) in enumerate(threads[:n])
    ]
    probes = [
        Stream(i, tid, _message("probe", i, probe_chunks, delay_ms))
        for i, (tid, _) in enumerate(probe_threads)
    ]

    http = _http(spec["app_url"] if target == "app" else spec["gateway_url"].rstrip("/") + "/")
    sockets: dict[int, AppSocket] = {}
    try:
        if target == "app":
            sessions = spec["sessions"]
            page_http = http if spec.get("open_pages") else None

            async def opened(tid: int, owner: int) -> None:
                sock = AppSocket(spec["app_url"], sessions[owner], tid)
                await sock.open(page_http)
                sockets[tid] = sock

            await _bounded([opened(tid, owner) for tid, owner in threads[:n]], CONNECT_CONCURRENCY)

            def runner(s: Stream):
                return sockets[s.thread_id].run(s, deadline)

            if page_http is None:
                # The probes' tabs are open already: only the turn itself is timed and costed.
                await _bounded(
                    [opened(tid, owner) for tid, owner in probe_threads], CONNECT_CONCURRENCY
                )

            async def probe(s: Stream, owner: int) -> None:
                if page_http is None:
                    await sockets[s.thread_id].run(s, deadline)
                    return
                # A new tab: the page, then its websocket, then the message.
                sock = AppSocket(spec["app_url"], sessions[owner], s.thread_id)
                await sock.open(page_http)
                try:
                    await sock.run(s, deadline)
                finally:
                    await sock.close()
        else:
            direct = DirectStream(http, spec["api_key"])

            def runner(s: Stream):
                return direct.run(s, deadline)

            async def probe(s: Stream, owner: int) -> None:
                await direct.run(s, deadline)

            # One unmeasured request first: the app's pool to the gateway is warm too.
            await direct.run(Stream(-1, 0, _message("warm", 0, 1, 0)), deadline)

        await asyncio.sleep(0.3)  # let connection set-up finish on the server
        before = sampler.mark()
        sampler.start()
        t0 = now()

        async def delayed(s: Stream) -> None:
            await asyncio.sleep(max(0.0, t0 + ramp * s.index / max(1, n) - now()))
            await runner(s)

        tasks = [asyncio.create_task(delayed(s)) for s in background]
        if probes:
            # Probes go one after another once every background stream is under way.
            while background and time.monotonic() < deadline:
                if all(s.first is not None or s.status for s in background):
                    break
                await asyncio.sleep(0.01)
            for s, (_, owner) in zip(probes, probe_threads, strict=True):
                await probe(s, owner)
        await asyncio.gather(*tasks)
        after = sampler.mark()
        await sampler.stop()
    finally:
        await _bounded([sock.close() for sock in sockets.values()], 200)
        await http.aclose()

    gaps, steady_start, steady_end = _steady_gaps(background)
    probes_end = max((s.done or s.sent for s in probes), default=0.0)
    relayed = chunks * sum(s.ok for s in background) + probe_chunks * sum(s.ok for s in probes)
    return {
        "target": target,
        "streams": n,
        "chunks": chunks,
        "delay_ms": delay_ms,
        "ramp_s": ramp,
        "background": [_stream_record(s) for s in background],
        "probes": [_stream_record(s) for s in probes],
        "probes_in_steady_window": bool(probes) and probes_end <= steady_end,
        "gaps_ms": gaps,
        "steady_window_s": max(0.0, steady_end - steady_start),
        "cpu_s": after["cpu"] - before["cpu"],
        "wall_s": after["t"] - before["t"],
        "chunks_relayed": relayed,
        "rss_before_kb": before["rss_kb"],
        "rss_peak_kb": sampler.peak_kb,
        "failures": [_stream_record(s) for s in background + probes if not s.ok][:5],
        "failed": sum(not s.ok for s in background + probes),
    }


async def run_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Idle connections first (RSS growth per connection), then streams on some of them."""
    target = spec["target"]
    idle_n, active_n = spec["idle"], spec["active"]
    chunks, delay_ms = spec["chunks"], spec["delay_ms"]
    threads = spec["threads"]
    pid = spec["pid"]
    if len(threads) < idle_n + (active_n if target == "direct" else 0):
        raise LoadError("not enough threads for the memory scenario")
    deadline = time.monotonic() + chunks * delay_ms / 1000 * 4 + 120
    result: dict[str, Any] = {"target": target, "idle": idle_n, "active": active_n}
    http = _http(spec["app_url"] if target == "app" else spec["gateway_url"].rstrip("/") + "/")
    sockets: list[AppSocket] = []
    holders: list[asyncio.Task] = []
    release = asyncio.Event()
    sampler = Sampler(pid)
    try:
        result["rss_base_kb"] = await settle_rss(pid, 0.3)
        if target == "app":

            async def opened(tid: int, owner: int) -> None:
                sock = AppSocket(spec["app_url"], spec["sessions"][owner], tid)
                await sock.open(None)
                sockets.append(sock)

            await _bounded([opened(t, o) for t, o in threads[:idle_n]], CONNECT_CONCURRENCY)
        else:
            # An idle open stream: the first delta, then the gateway waits a minute to send more.
            direct = DirectStream(http, spec["api_key"])
            idle_streams = [
                Stream(i, tid, _message("idle", i, 2, 60_000))
                for i, (tid, _) in enumerate(threads[:idle_n])
            ]
            semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
            started = asyncio.Event()
            opened_count = 0

            async def hold(s: Stream) -> None:
                nonlocal opened_count
                async with semaphore:
                    opened = asyncio.Event()
                    task = asyncio.create_task(direct.run(s, deadline, hold=release, opened=opened))
                    await opened.wait()
                opened_count += 1
                if opened_count == idle_n:
                    started.set()
                await task

            holders = [asyncio.create_task(hold(s)) for s in idle_streams]
            async with asyncio.timeout(120):
                await started.wait()
            failed = [s for s in idle_streams if s.first is None]
            if failed:
                raise LoadError(f"{len(failed)} idle streams did not start: {failed[0].error}")
        result["rss_idle_kb"] = await settle_rss(pid, 0.5)

        # Now stream on the first ``active_n`` connections (the app: on the open sockets).
        active = [
            Stream(i, tid, _message("active", i, chunks, delay_ms))
            for i, (tid, _) in enumerate(threads[idle_n : idle_n + active_n])
        ]
        if target == "app":
            active = [
                Stream(i, sock.thread_id, _message("active", i, chunks, delay_ms))
                for i, sock in enumerate(sockets[:active_n])
            ]
            runs = [sockets[i].run(s, deadline) for i, s in enumerate(active)]
        else:
            runs = [direct.run(s, deadline) for s in active]
        sampler.start()
        before = sampler.mark()
        await asyncio.gather(*runs)
        await sampler.stop()
        # RSS while all streams ran: the samples between the last first delta and the first end.
        ok = [s for s in active if s.ok]
        if ok:
            start, end = max(s.first for s in ok), min(s.done for s in ok)
            during = [rss for t, rss in sampler.samples if start <= t <= end]
            result["rss_active_kb"] = max(during) if during else sampler.peak_kb
        result["rss_active_peak_kb"] = sampler.peak_kb
        result["active_failed"] = len(active) - len(ok)
        result["failures"] = [_stream_record(s) for s in active if not s.ok][:5]
        result["active_before_kb"] = before["rss_kb"]
    finally:
        release.set()
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        await _bounded([sock.close() for sock in sockets], 200)
        await http.aclose()
    return result


async def run_login(spec: dict[str, Any]) -> dict[str, Any]:
    sessions = await _bounded(
        [login(spec["app_url"], name, spec["password"]) for name in spec["users"]], 2
    )
    return {"sessions": sessions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["login", "streams", "memory"])
    parser.add_argument("spec", type=Path, help="JSON spec (written by bench/run.py)")
    parser.add_argument("out", type=Path, help="where to write the JSON result")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    scenario = {"login": run_login, "streams": run_streams, "memory": run_memory}[args.command]
    result = asyncio.run(scenario(spec))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()

"""The floor of the stack: CPU per relayed chunk of a bare relay with none of Switchboard's code.

    .venv/bin/python bench/floor.py --streams 100,500 --chunks 250
    .venv/bin/python bench/floor.py --streams 100 --profile    # where the relay's CPU goes
    .venv/bin/python bench/floor.py --streams 100 --probes 20  # and the first token it adds

Starts, on 127.0.0.1, the demo gateway (50 chunks/s per stream, as ``make bench``) and one bare
relay per mode and stack, each under Daphne as the app is served
(``devtools.launch.daphne_command``). A bare relay is this module's ``application``: a plain
ASGI websocket app (no Django, Channels, auth, database or HTML). For each text message a
websocket sends, it POSTs the request the app sends upstream (``/v1/responses``,
``stream: true``, bearer key) with ``httpx.AsyncClient.stream`` and forwards the answer's text
deltas to that websocket, in one of two modes:

- ``per-event``: one websocket frame per SSE text delta, each network read handled at once;
- ``coalesced``: as the app's runner paces itself (``TurnRunner._pace``): read everything that
  has arrived, send it as ONE frame, sleep until the 40 ms window ends, read again.

Two stacks (``--stack``): ``stock`` is the libraries as they come. ``lean`` is the same stack
trimmed the way Switchboard already trims it, which is the floor its relay can reach without
replacing a library: reads through ``chat.upstream.network``'s asyncio backend (no anyio cancel
scope per read) from the raw response stream (no ``aiter_raw`` wrapper), as
``chat.upstream.client`` does, and frames written straight to Daphne's transport by
``chat.live_local.frame_writer`` (no coroutine into Daphne, no autobahn bookkeeping per frame).
The coalesced mode uses ``chat.upstream.eager`` in both, to tell a read of data already here
from one that would wait (what Python 3.12's eager tasks do).

A load generator in its own process (its CPU is not counted) opens N websockets, starts N
streams of C chunks ramped in over ``--ramp`` seconds, reads every frame until each stream's end
and counts the chunks. Frames are ``"<k>\\n<text>"`` (k deltas joined), then ``"done <n>"``.

Printed per mode and level: the relay's CPU (utime + stime, ``/proc``) ÷ chunks relayed, over
the whole scenario (as ``make bench`` #4 counts it) and over the steady window (every stream
running); the gateway's CPU per chunk in the same window, for comparison. With ``--probes K``,
K short answers one after another while every stream runs, through the relay and straight from
the gateway: the time to first text the bare stack adds (as ``make bench`` #1 measures it).
Timings are printed, never asserted; the exit status is non-zero only when a stream did not
deliver every chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    PYTHON,
    ROOT,
    Process,
    cpu_seconds,
    daphne_command,
    demo_gateway_command,
    free_port,
    percentile,
    wait_http,
)

MODES = ("per-event", "coalesced")
STACKS = ("stock", "lean")
API_KEY = "floor"
WINDOW = 0.04  # STREAM_COALESCE_SECONDS' default
DELAY_MS = 20  # 50 chunks/s per stream, as make bench
CONNECT_CONCURRENCY = 32  # as bench/loadgen.py: a connect storm would only measure the backlog

# ----------------------------------------------------------------------------------------------
# The bare relay: runs under Daphne (``bench.floor:application``), configured by environment.
# ----------------------------------------------------------------------------------------------

DELTA = b"event: response.output_text.delta\ndata: "
END = b"event: response.completed\n"
FAILED = (b"event: response.incomplete\n", b"event: response.failed\n", b"event: error\n")

_http: httpx.AsyncClient | None = None


class RelayError(Exception):
    """The gateway answered with something other than a complete stream."""


def _gateway() -> httpx.AsyncClient:
    """One pooled client per process, as the app keeps one per provider."""
    global _http
    if _http is None:
        _http = httpx.AsyncClient(
            base_url=os.environ["FLOOR_GATEWAY"].rstrip("/") + "/",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=httpx.Timeout(60.0),
            # The app's limits (chat/upstream/client.py): a pool of more than 100 connections
            # closes each one its answer leaves idle (httpcore counts all, not the idle ones).
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            trust_env=False,
        )
        if os.environ.get("FLOOR_STACK") == "lean":
            from chat.upstream.network import use_asyncio_backend

            use_asyncio_backend(_http)
    return _http


def _texts(events: list[bytes]) -> tuple[list[str], bool]:
    """The text deltas of complete SSE events, and whether the answer completed."""
    texts, ended = [], False
    for event in events:
        if event.startswith(DELTA):
            texts.append(orjson.loads(event[len(DELTA) :])["delta"])
        elif event.startswith(END):
            ended = True
        elif event.startswith(FAILED):
            raise RelayError(event[:200].decode(errors="replace"))
    return texts, ended


async def _per_event(chunks, send, write) -> int:
    buffer, count, ended = b"", 0, False
    async for chunk in chunks:  # to the body's end: the connection goes back to the pool
        *events, buffer = (buffer + chunk).split(b"\n\n")
        texts, done = _texts(events)
        for text in texts:
            if write is None:
                await send({"type": "websocket.send", "text": "1\n" + text})
            else:
                write("1\n" + text)
        count += len(texts)
        ended = ended or done
    if not ended:
        raise RelayError("the stream ended early")
    return count


async def _until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _coalesced(chunks, send, write) -> int:
    from chat.upstream.eager import start  # run a read up to its first wait

    loop = asyncio.get_running_loop()
    buffer, count, next_flush, ahead = b"", 0, 0.0, None
    try:
        while True:
            read, ahead = ahead or anext(chunks), None
            try:
                parts = [await read]
            except StopAsyncIteration:
                raise RelayError("the stream ended early") from None
            # Everything already here completes at once; the first read that would wait is
            # kept for the next window (nothing is woken meanwhile).
            while (ahead := start(anext(chunks))).succeeded:
                parts.append(ahead.result())
            *events, buffer = (buffer + b"".join(parts)).split(b"\n\n")
            texts, ended = _texts(events)
            if texts:
                await _until(next_flush)
                frame = f"{len(texts)}\n" + "".join(texts)
                if write is None:
                    await send({"type": "websocket.send", "text": frame})
                else:
                    write(frame)
                count += len(texts)
                next_flush = loop.time() + WINDOW
            if ended:
                # Read the body to its end (the chunked terminator follows the last event): a
                # response read whole returns its connection to the pool instead of closing it.
                read, ahead = ahead, None
                with contextlib.suppress(StopAsyncIteration):
                    await read
                    async for _ in chunks:
                        pass
                return count
            await _until(next_flush)
    finally:
        if ahead is not None:
            await ahead.abandon()


async def _relay(text: str, send) -> None:
    body = {"model": "demo-chat", "input": [{"role": "user", "content": text}], "stream": True}
    headers = {"Accept": "text/event-stream"}
    forward = _coalesced if os.environ.get("FLOOR_MODE") == "coalesced" else _per_event
    try:
        async with _gateway().stream("POST", "responses", json=body, headers=headers) as response:
            if response.status_code != 200:
                raise RelayError(f"HTTP {response.status_code}")
            if os.environ.get("FLOOR_STACK") == "lean":
                from chat.live_local import frame_writer

                chunks, write = response.stream.__aiter__(), frame_writer(send)
                if write is None:
                    raise RelayError("chat.live_local.frame_writer does not know this server")
            else:
                chunks, write = response.aiter_raw(), None
            count = await forward(chunks, send, write)
        await send({"type": "websocket.send", "text": f"done {count}"})
    except (RelayError, httpx.HTTPError) as exc:
        await send({"type": "websocket.send", "text": f"error {type(exc).__name__}: {exc}"})


async def application(scope: dict, receive, send) -> None:
    """The bare relay: accept any websocket, relay a stream per text message it sends."""
    if scope["type"] == "http":  # readiness check
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"bare relay\n"})
        return
    if scope["type"] != "websocket":
        return
    running: set[asyncio.Task] = set()
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            task = asyncio.create_task(_relay(message["text"], send))
            running.add(task)
            task.add_done_callback(running.discard)
        elif message["type"] == "websocket.disconnect":
            for task in running:
                task.cancel()
            return


# ----------------------------------------------------------------------------------------------
# The load generator (``floor.py client SPEC``, its own process): JSON spec in, JSON out.
# ----------------------------------------------------------------------------------------------


class _Stream:
    __slots__ = ("done", "error", "first", "frames", "reported")

    def __init__(self) -> None:
        self.frames: list[tuple[float, int]] = []  # (arrival, deltas in the frame)
        self.first: float | None = None
        self.done: float | None = None
        self.reported = -1
        self.error = ""


async def _read_stream(ws, stream: _Stream, message: str, start_at: float) -> None:
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    await ws.send(message)
    async for raw in ws:
        t = time.perf_counter()
        head, _, _rest = raw.partition("\n")
        if head.isdigit():
            stream.frames.append((t, int(head)))
            if stream.first is None:
                stream.first = t
        elif raw.startswith("done "):
            stream.done, stream.reported = t, int(raw[5:])
            return
        else:
            stream.error = raw[:200]
            return
    stream.error = "the websocket closed mid-answer"


async def _probe_relay(ws, k: int) -> float:
    """One short answer through the relay: ms from the send to its first frame."""
    sent = time.perf_counter()
    await ws.send(f"floor probe {k}: hi #chunks=3 #delay={DELAY_MS}")
    first = None
    async for raw in ws:
        if first is None and raw.partition("\n")[0].isdigit():
            first = time.perf_counter()
        if raw.startswith("done ") or not raw.partition("\n")[0].isdigit():
            break
    if first is None:
        raise RuntimeError(f"probe {k}: no text came back")
    return (first - sent) * 1000


async def _probe_direct(client: httpx.AsyncClient, url: str, k: int) -> float:
    """The same answer straight from the gateway: ms from the request to its first text delta."""
    text = f"floor direct {k}: hi #chunks=3 #delay={DELAY_MS}"
    body = {"model": "demo-chat", "input": [{"role": "user", "content": text}], "stream": True}
    sent = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if first is None and line.startswith("data:") and "output_text.delta" in line:
                first = time.perf_counter()
    if first is None:
        raise RuntimeError(f"direct probe {k}: no text came back")
    return (first - sent) * 1000


async def _probes(spec: dict[str, Any], start_at: float) -> dict[str, list[float]]:
    """While every stream runs: ``probes`` short answers one after another through the relay,
    then as many straight from the gateway (the baseline), like ``make bench`` #1."""
    from websockets.asyncio.client import connect

    count = spec.get("probes", 0)
    got: dict[str, list[float]] = {"relay_ms": [], "direct_ms": []}
    if not count:
        return got
    ws = await connect(spec["url"], compression=None, ping_interval=None, max_queue=None)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        for k in range(count):
            got["relay_ms"].append(await _probe_relay(ws, k))
            got["direct_ms"].append(await _probe_direct(client, spec["gateway"] + "/responses", k))
    await ws.close()
    return got


async def _sample(pids: list[int], samples: list[tuple[float, ...]]) -> None:
    while True:
        samples.append((time.perf_counter(), *(cpu_seconds(pid) for pid in pids)))
        await asyncio.sleep(0.05)


def _window_cpu(samples, start: float, end: float) -> tuple[float, float, float, float] | None:
    """The first sample at or after ``start`` and the last at or before ``end``: their times
    and each process's CPU between them."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    return a[0], b[0], b[1] - a[1], b[2] - a[2]


async def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    n, chunks, ramp = spec["streams"], spec["chunks"], spec["ramp_s"]
    pids = [spec["relay_pid"], spec["gateway_pid"]]
    semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def opened():
        async with semaphore:
            return await connect(spec["url"], compression=None, ping_interval=None, max_queue=None)

    sockets = await asyncio.gather(*(opened() for _ in range(n)))
    streams = [_Stream() for _ in range(n)]
    samples: list[tuple[float, ...]] = []
    await asyncio.sleep(0.3)  # connection set-up finished on the server
    sampler = asyncio.create_task(_sample(pids, samples))
    before = time.perf_counter(), cpu_seconds(pids[0]), cpu_seconds(pids[1])
    t0 = before[0] + 0.05
    reads = [
        _read_stream(
            ws,
            s,
            f"floor {i}: tell me a story #chunks={chunks} #delay={DELAY_MS}",
            t0 + ramp * i / max(1, n),
        )
        for i, (ws, s) in enumerate(zip(sockets, streams, strict=True))
    ]
    probes = asyncio.create_task(_probes(spec, t0 + ramp + 0.5))
    try:
        async with asyncio.timeout(ramp + chunks * DELAY_MS / 1000 * 6 + 60):
            await asyncio.gather(*reads)
    except TimeoutError:
        for s in streams:
            s.error = s.error or ("timeout" if s.done is None else "")
    after = time.perf_counter(), cpu_seconds(pids[0]), cpu_seconds(pids[1])
    probed = await probes
    sampler.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    delivered = [s for s in streams if s.done is not None and not s.error]
    received = [sum(k for _, k in s.frames) for s in streams]
    chunks_relayed = sum(received)
    result: dict[str, Any] = {
        "streams": n,
        "chunks": chunks,
        "complete": sum(
            r == chunks and s.reported == chunks for r, s in zip(received, streams, strict=True)
        ),
        "errors": [s.error for s in streams if s.error][:3],
        "chunks_relayed": chunks_relayed,
        "frames": sum(len(s.frames) for s in streams),
        "wall_s": after[0] - before[0],
        "relay_cpu_s": after[1] - before[1],
        "gateway_cpu_s": after[2] - before[2],
        "steady": None,
        "probes": probed,
    }
    if delivered:
        window = _window_cpu(
            samples, max(s.first for s in delivered), min(s.done for s in delivered)
        )
        if window is not None:
            a, b, relay_cpu, gateway_cpu = window
            steady_chunks = sum(k for s in streams for t, k in s.frames if a < t <= b)
            result["steady"] = {
                "seconds": b - a,
                "chunks": steady_chunks,
                "relay_cpu_s": relay_cpu,
                "gateway_cpu_s": gateway_cpu,
            }
    return result


# ----------------------------------------------------------------------------------------------
# The orchestrator: processes, runs, figures.
# ----------------------------------------------------------------------------------------------


def per_chunk(cpu_s: float, chunks: int) -> float | None:
    return cpu_s / chunks * 1e6 if chunks else None


def figures(r: dict[str, Any]) -> dict[str, float | None]:
    """µs of CPU per chunk: the relay over the scenario and the steady window, the gateway."""
    steady = r["steady"] or {}
    return {
        "relay_scenario": per_chunk(r["relay_cpu_s"], r["chunks_relayed"]),
        "relay_steady": per_chunk(steady.get("relay_cpu_s", 0), steady.get("chunks", 0)),
        "gateway_steady": per_chunk(steady.get("gateway_cpu_s", 0), steady.get("chunks", 0)),
        "chunks_per_frame": r["chunks_relayed"] / r["frames"] if r["frames"] else None,
    }


class Floor:
    """The demo gateway and one bare relay per (mode, stack), in a throwaway work dir."""

    def __init__(self, variants: list[tuple[str, str]], workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[Process] = []
        gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
        env = os.environ | {"DEMO_RECORD_REQUESTS": "0", "PYTHONUNBUFFERED": "1"}
        command = demo_gateway_command(gateway_port, api_key=API_KEY, delay_ms=DELAY_MS)
        self.gateway = self._spawn("gateway", command, env)
        self.relays: dict[tuple[str, str], tuple[Process, str]] = {}
        for mode, stack in variants:
            port = free_port()
            relay_env = env | {
                "FLOOR_MODE": mode,
                "FLOOR_STACK": stack,
                "FLOOR_GATEWAY": self.gateway_url,
            }
            relay = self._spawn(
                f"relay-{mode}-{stack}", daphne_command(port, "bench.floor:application"), relay_env
            )
            self.relays[mode, stack] = relay, f"127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {API_KEY}"}
        wait_http(self.gateway_url + "/models", self.gateway, headers=auth)
        for relay, address in self.relays.values():
            wait_http(f"http://{address}/", relay)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        process = Process(name, argv, env, self.workdir / f"{name}.log")
        self.processes.append(process)
        return process

    def run(
        self, variant: tuple[str, str], streams: int, chunks: int, ramp: float, probes: int = 0
    ) -> dict:
        relay, address = self.relays[variant]
        spec = {
            "url": f"ws://{address}/",
            "gateway": self.gateway_url,
            "streams": streams,
            "chunks": chunks,
            "ramp_s": ramp,
            "relay_pid": relay.pid,
            "gateway_pid": self.gateway.pid,
            "probes": probes,
        }
        done = subprocess.run(
            [PYTHON, __file__, "client", json.dumps(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=ramp + chunks * DELAY_MS / 1000 * 6 + 120,
            check=False,
        )
        if done.returncode != 0 or not relay.alive():
            raise RuntimeError(
                f"the load generator failed:\n{done.stderr[-2000:]}\n{relay.log_tail()}"
            )
        return json.loads(done.stdout)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


# -- the profile -------------------------------------------------------------------------------

# py-spy names a frame ``function (path/inside/site-packages.py:line)``; the first part of the
# path is the package. Frames of C code (orjson, the selector, asyncio's C tasks) are charged to
# the Python frame that called them.
PACKAGES = {
    "asyncio": "asyncio (loop, tasks)",
    "selectors.py": "asyncio (loop, tasks)",
    "floor.py": "the relay itself (+ orjson)",
    "chat": "chat.upstream, chat.live_local (lean)",
}
# What the relay was doing, from the whole stack: the first marker found, in this order.
ACTIVITIES = (
    (("handle_reply", "frame_writer"), "send a frame (Daphne, autobahn, Twisted write)"),
    (("doWrite", "writeSomeData"), "flush to the socket (Twisted, when writable)"),
    (("_texts",), "parse the SSE (split, orjson)"),
    (("aiter_raw", "BoundAsyncStream", "Started.__await__", "start (chat/"), "read the SSE"),
    (("AsyncClient.stream", "Response.aclose", "AsyncClient.send"), "start/end a request"),
    (("_read_ready",), "socket receive (asyncio data_received)"),
    (("dataReceived", "doRead"), "websocket receive (Twisted, autobahn)"),
)


def _package(frame: str) -> str:
    path = frame.rpartition(" (")[2].split(":")[0]
    top = path.split("/")[0]
    if top in PACKAGES:
        return PACKAGES[top]
    if top.removesuffix(".py") in sys.stdlib_module_names or top.startswith("<frozen"):
        return "stdlib (other)"
    return top


def categorize(raw_path: Path) -> tuple[collections.Counter, collections.Counter]:
    """py-spy's collapsed stacks (``-f raw``): samples by the innermost frame's package, and by
    what the relay was doing (``ACTIVITIES``; the rest is the event loop and its callbacks)."""
    packages: collections.Counter = collections.Counter()
    activities: collections.Counter = collections.Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        packages[_package(stack.rsplit(";", 1)[-1])] += int(number)
        activity = next(
            (name for markers, name in ACTIVITIES if any(m in stack for m in markers)),
            "event loop, tasks, timers (asyncio, Twisted reactor)",
        )
        activities[activity] += int(number)
    return packages, activities


def profile(floor: Floor, variant, streams: int, seconds: int, ramp: float, out: Path):
    """One run with py-spy attached to the relay for ``seconds`` while every stream runs (after
    the ramp, before the first stream ends; the streams are made long enough). py-spy pauses
    the relay to sample it: this run's own CPU figures are not used."""
    relay, _ = floor.relays[variant]
    start_after = ramp + 0.3
    chunks = round((start_after + seconds + 1.0) * 1000 / DELAY_MS)
    py_spy = Path(PYTHON).parent / "py-spy"
    argv = [str(py_spy), "record", "-p", str(relay.pid), "-r", "300", "-d", str(seconds)]
    argv += ["--gil", "-f", "raw", "-o", str(out)]

    async def both() -> tuple[dict, int]:
        async def spy() -> int:
            await asyncio.sleep(start_after + 0.35)  # the client's own set-up before its t0
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            return await proc.wait()

        run = asyncio.to_thread(floor.run, variant, streams, chunks, ramp)
        result, code = await asyncio.gather(run, spy())
        return result, code

    result, code = asyncio.run(both())
    if code != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed (exit {code})")
    return result, *categorize(out)


# -- main --------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:6.1f}"


def _spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f} to {max(values):.1f})"


def _first_tokens(probes: dict[str, list[float]]) -> str:
    """Probes' time to first text, p50 / p99: through the relay, direct, and the difference."""

    relay, direct = probes["relay_ms"], probes["direct_ms"]
    r50, r99, d50, d99 = (percentile(v, q) for v in (relay, direct) for q in (50, 99))
    return (
        f"relay p50 {r50:.1f} / p99 {r99:.1f} ms, direct p50 {d50:.1f} / p99 {d99:.1f} ms, "
        f"added p50 {r50 - d50:.1f} / p99 {r99 - d99:.1f} ms"
    )


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        print(json.dumps(asyncio.run(run_client(json.loads(sys.argv[2])))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="100,500", help="levels, comma-separated")
    parser.add_argument("--chunks", type=int, default=250, help="chunks per stream (50/s)")
    parser.add_argument("--modes", default=",".join(MODES), help="per-event,coalesced")
    parser.add_argument("--stack", default="stock", help="stock, lean, or stock,lean")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode and level")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds to start all streams")
    parser.add_argument("--profile", action="store_true", help="py-spy at the first level")
    parser.add_argument("--profile-seconds", type=int, default=6, help="py-spy's duration")
    parser.add_argument(
        "--probes", type=int, default=0, help="first-token probes per run while all streams run"
    )
    parser.add_argument("--json", type=Path, help="write every run's numbers here")
    args = parser.parse_args()
    levels = [int(x) for x in args.streams.split(",")]
    modes, stacks = args.modes.split(","), args.stack.split(",")
    if not set(modes) <= set(MODES) or not set(stacks) <= set(STACKS):
        parser.error(f"modes are {MODES}, stacks {STACKS}")
    variants = [(m, r) for r in stacks for m in modes]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-floor-"))
    floor = Floor(variants, workdir)
    runs: dict[tuple, list[dict]] = collections.defaultdict(list)
    incomplete = 0
    try:
        for variant in variants:  # warm: imports, the pool's first connections
            floor.run(variant, 2, 5, 0.0)
        print(
            f"{'mode':>10} {'stack':>6} {'streams':>7}  relay µs/chunk: scenario  steady"
            f"  gateway µs/chunk  chunks/frame  complete  wall s"
        )
        for _ in range(args.repeat):  # interleaved: the machine's other load hits all alike
            for n in levels:
                for variant in variants:
                    r = floor.run(variant, n, args.chunks, args.ramp, args.probes)
                    runs[(*variant, n)].append(r)
                    f = figures(r)
                    incomplete += r["streams"] - r["complete"]
                    print(
                        f"{variant[0]:>10} {variant[1]:>6} {n:7}  {_fmt(f['relay_scenario']):>23}"
                        f"  {_fmt(f['relay_steady'])}  {_fmt(f['gateway_steady']):>16}"
                        f"  {_fmt(f['chunks_per_frame']):>12}  {r['complete']:>4}/{n:<4}"
                        f"  {r['wall_s']:6.1f}",
                        flush=True,
                    )
                    if r["errors"]:
                        print(f"    errors: {r['errors']}")
                    if r["probes"]["relay_ms"]:
                        print(f"    first token: {_first_tokens(r['probes'])}", flush=True)
        print("\nsummary (median (range) over repeats, µs of CPU per chunk)")
        for key, results in runs.items():
            mode, stack, n = key
            got = [figures(r) for r in results]
            relay_sc = _spread([g["relay_scenario"] for g in got])
            relay_st = _spread([g["relay_steady"] for g in got])
            gateway = _spread([g["gateway_steady"] for g in got])
            print(
                f"  {mode:>9} {stack:>5} {n:4} streams: relay {relay_sc} (scenario), "
                f"{relay_st} (steady); gateway {gateway}"
            )
        if args.profile:
            print(f"\nprofile at {levels[0]} streams (py-spy --gil, innermost frame's package)")
            for variant in variants:
                out = workdir / f"profile-{variant[0]}-{variant[1]}.txt"
                _, packages, activities = profile(
                    floor, variant, levels[0], args.profile_seconds, args.ramp, out
                )
                measured = [figures(r)["relay_steady"] for r in runs[(*variant, levels[0])]]
                us = statistics.median([m for m in measured if m is not None] or [0.0])
                total = sum(packages.values()) or 1
                print(f"  {variant[0]} ({variant[1]}), {total} samples, of {us:.1f} µs/chunk:")
                for counts in (packages, activities):
                    for name, count in counts.most_common():
                        share = count / total
                        print(f"    {name:<55} {share:6.1%}  {share * us:6.1f} µs/chunk")
                    print()
        if args.json:
            args.json.write_text(json.dumps({" ".join(map(str, k)): v for k, v in runs.items()}))
    finally:
        floor.stop()
    if incomplete:
        print(f"\n{incomplete} stream(s) did not deliver every chunk (logs in {workdir})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: uploading and sending big files while other answers stream.

A real app (Daphne, its own SQLite file) in front of the demo gateway: ``streams`` answers
stream over websockets; in the measured round, while they run, one user uploads a 10 MB PDF and
a 12-megapixel photo (multipart POSTs to /files/upload/: hashing, sniffing, decoding,
re-encoding and thumbnailing in Django's thread pool) and sends them with a message (the
conversation's files are read and the photo shrunk for the upstream, off the event loop). The
figure is the inter-chunk delay of the streaming answers with the uploads against a round
without them, same app, same sizes.

    python bench/attachments.py [--streams 20] [--chunks 300]

``measure() -> dict`` returns the figures for the bench harness (bench/figures.py #15).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import (  # noqa: E402
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
from loadgen import AppSocket, Stream, _http, _message, _steady_gaps, login  # noqa: E402

API_KEY = "bench-attachments-key"
CHIP_ID = re.compile(r'name="attachments" value="([0-9a-f-]{36})"')


def _photo(megapixels: int) -> bytes:
    """A camera-like JPEG: noise (so it compresses like a photo, not like a flat colour)."""
    from PIL import Image

    width = int((megapixels * 1_000_000 * 4 / 3) ** 0.5)
    height = megapixels * 1_000_000 // width
    channels = [Image.effect_noise((width, height), 60) for _ in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, "JPEG", quality=70)
    return out.getvalue()


def _pdf(megabytes: int) -> bytes:
    body = os.urandom(megabytes * 1024 * 1024 - 32)
    return b"%PDF-1.7\n" + body + b"\n%%EOF\n"


def _start(work: Path, streams: int, chunk_delay_ms: int) -> tuple[Process, Process, str, dict]:
    gateway_port, app_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DEMO_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SWITCHBOARD_DATA_DIR": str(work),
        "DJANGO_SECURE": "0",
        "DJANGO_DEBUG": "0",
        "DEMO_GATEWAY_ENABLED": "0",
        "RATE_LIMIT_PER_MINUTE": "0",
        "AUTO_TITLES": "0",
        "PORT": str(app_port),
        "LOG_LEVEL": "WARNING",
    }
    gateway = Process(
        "gateway",
        demo_gateway_command(gateway_port, api_key=API_KEY, delay_ms=chunk_delay_ms),
        env,
        work / "gateway.log",
    )
    gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
    wait_http(gateway_url + "/models", gateway, headers={"Authorization": f"Bearer {API_KEY}"})
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    seed = subprocess.run(
        [PYTHON, "bench/seed.py", "--gateway", gateway_url, "--api-key", API_KEY, "--users", "1",
         "--threads", str(2 * streams + 2), "--page-turns", "1", "--password", PASSWORD],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    app = Process("app", daphne_command(app_port), env, work / "app.log")
    app_url = f"http://127.0.0.1:{app_port}"
    wait_http(app_url + "/healthz", app)
    return gateway, app, app_url, json.loads(seed.stdout)


async def _upload(http, cookies: dict, thread_id: int, name: str, data: bytes, kind: str) -> str:
    response = await http.post(
        "/files/upload/",
        data={"thread": str(thread_id)},
        files={"file": (name, data, kind)},
        cookies=cookies,
        headers={"X-CSRFToken": cookies["csrftoken"], "Referer": str(http.base_url)},
        timeout=120,
    )
    match = CHIP_ID.search(response.text)
    if response.status_code != 200 or match is None:
        raise RuntimeError(f"upload of {name}: HTTP {response.status_code} {response.text[:300]}")
    return match.group(1)


async def _send_files(app_url, cookies, thread_id: int, files: list[tuple]) -> dict:
    """Upload ``files`` one after the other (as the composer does), then send them."""
    timings = {}
    async with _http(app_url) as http:
        ids = []
        for name, data, kind in files:
            started = time.perf_counter()
            ids.append(await _upload(http, cookies, thread_id, name, data, kind))
            timings[f"upload_{name}_s"] = round(time.perf_counter() - started, 3)
    sock = AppSocket(app_url, cookies, thread_id)
    await sock.open(None)
    try:
        assert sock.ws is not None
        started = time.perf_counter()
        await sock.ws.send(json.dumps({"message": "What is in these files?", "attachments": ids}))
        async for raw in sock.ws:
            match = re.search(r'data-status="(\w+)"', raw if isinstance(raw, str) else "")
            if match and match.group(1) not in ("in_progress", "pending"):
                timings["send_to_answer_s"] = round(time.perf_counter() - started, 3)
                timings["status"] = match.group(1)
                break
    finally:
        await sock.close()
    return timings


async def _round(app_url, cookies, threads, chunks, delay_ms, files=None, files_thread=None):
    streams = [
        Stream(i, tid, _message("upload-bench", i, chunks, delay_ms))
        for i, (tid, _owner) in enumerate(threads)
    ]
    sockets = [AppSocket(app_url, cookies, s.thread_id) for s in streams]
    await asyncio.gather(*(sock.open(None) for sock in sockets))
    deadline = time.monotonic() + chunks * delay_ms / 1000 * 4 + 120
    try:
        pairs = zip(sockets, streams, strict=True)
        tasks = [asyncio.create_task(sock.run(s, deadline)) for sock, s in pairs]
        uploads = {}
        if files:
            # The uploads start once every answer is streaming.
            while time.monotonic() < deadline:
                if all(s.first is not None or s.status for s in streams):
                    break
                await asyncio.sleep(0.01)
            # On a loop of its own, so the client's sending never delays its reading.
            uploads = await asyncio.to_thread(
                asyncio.run, _send_files(app_url, cookies, files_thread, files)
            )
            uploads["during_streams"] = not all(s.done for s in streams)
        await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(sock.close() for sock in sockets))
    gaps, start, end = _steady_gaps(streams)
    return {
        "p50_ms": percentile(gaps, 50),
        "p99_ms": percentile(gaps, 99),
        "max_ms": max(gaps, default=None),
        "failed": sum(not s.ok for s in streams),
        "window_s": round(end - start, 2),
        **uploads,
    }


def measure(
    streams: int = 20, chunks: int = 300, delay_ms: int = 20, pdf_mb: int = 10, photo_mp: int = 12
) -> dict:
    photo, pdf = _photo(photo_mp), _pdf(pdf_mb)
    files = [("report.pdf", pdf, "application/pdf"), ("photo.jpg", photo, "image/jpeg")]
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        gateway, app, app_url, seed = _start(work, streams, delay_ms)
        try:
            threads = seed["threads"]

            async def both() -> tuple[dict, dict]:
                cookies = await login(app_url, seed["users"][0], PASSWORD)
                base = await _round(app_url, cookies, threads[:streams], chunks, delay_ms)
                loaded = await _round(
                    app_url, cookies, threads[streams : 2 * streams], chunks, delay_ms,
                    files=files, files_thread=threads[-1][0],
                )  # fmt: skip
                return base, loaded

            without, with_uploads = asyncio.run(both())
        finally:
            app.stop()
            gateway.stop()
            if os.environ.get("BENCH_APP_LOG"):  # where to keep the app's log
                Path(os.environ["BENCH_APP_LOG"]).write_text(app.log_tail(200_000))
    return {
        "streams": streams,
        "chunks": chunks,
        "delay_ms": delay_ms,
        "pdf_bytes": len(pdf),
        "photo_bytes": len(photo),
        "photo_megapixels": photo_mp,
        "without_uploads": without,
        "with_uploads": with_uploads,
        "added_p99_ms": with_uploads["p99_ms"] - without["p99_ms"],
        "goal_added_p99_ms": 50,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(measure(streams=args.streams, chunks=args.chunks), indent=2))

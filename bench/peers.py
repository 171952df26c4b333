"""The API path raced against its peers on this machine: added time to first byte (p50/p99) and
CPU per relayed chunk at 1, 50 and 200 concurrent streams, for

``direct``       the demo gateway itself (the baseline: what every other target adds to),
``switchboard``  Switchboard's ``/api/v1/chat/completions`` with a personal key, in front of it,
``litellm``      LiteLLM's proxy (``litellm[proxy]``, master key, no database) in front of it.

Every process runs on 127.0.0.1, started here; streams of every target are measured in turn at
each level, so machine noise spreads over all of them. The load generator (asyncio + httpx) runs
in this process. ``make bench-peers`` installs LiteLLM in .venv-peers and runs this;
``python bench/peers.py --litellm PATH`` runs it with another LiteLLM (``--no-litellm``: without).
Import it and call ``measure()`` for the figures as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import PYTHON, ROOT, cpu_seconds, daphne_command, demo_gateway_command, free_port

GATEWAY_KEY = "bench-peers-gateway-key"
LITELLM_KEY = "sk-bench-peers-master"
MODEL = "demo-chat"
CHUNKS = 20  # content chunks per answer
DELAY_MS = 10  # the gateway's pause between chunks
LEVELS = (1, 50, 200)
# Streams measured per level: enough for a p99 at 50 and 200 (a few waves of streams).
WAVES = {1: 40, 50: 4, 200: 2}


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants (LiteLLM may run its server in a child)."""
    total, todo = 0.0, [pid]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    while todo:
        current = todo.pop()
        try:
            total += cpu_seconds(current)
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return total


def _wait_http(
    url: str, headers: dict[str, str], process: subprocess.Popen, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode})")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start in {seconds:.0f} s")


class Processes:
    def __init__(self, workdir: Path, litellm: str | None) -> None:
        self.workdir = workdir
        self.litellm = litellm
        self.started: list[subprocess.Popen] = []
        self.targets: dict[str, dict[str, Any]] = {}

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def start(self) -> None:
        port = free_port()
        gateway = self._spawn(
            "gateway",
            demo_gateway_command(port, api_key=GATEWAY_KEY, delay_ms=DELAY_MS),
            os.environ | {"DEMO_RECORD_REQUESTS": "0"},
        )
        upstream = f"http://127.0.0.1:{port}/v1"
        auth = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        _wait_http(upstream + "/models", auth, gateway, 30)
        self.targets["direct"] = {"url": upstream, "key": GATEWAY_KEY, "pid": gateway.pid}

        self._start_switchboard(upstream)
        if self.litellm:
            self._start_litellm(upstream)

    def _start_switchboard(self, upstream: str) -> None:
        port = free_port()
        data = self.workdir / "switchboard"
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SWITCHBOARD_DATA_DIR": str(data),
            "PORT": str(port),
            "DJANGO_SECURE": "0",
            "DEMO_GATEWAY_ENABLED": "0",
            "OPENAI_BASE_URL": upstream,
            "OPENAI_API_KEY": GATEWAY_KEY,
            "RATE_LIMIT_PER_MINUTE": "0",
            "LOG_LEVEL": "WARNING",
        }
        manage = [PYTHON, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "from django.contrib.auth.models import User; "
                "User.objects.create_user('bench', password='unused-bench-password')",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        key = subprocess.run(
            [*manage, "create_api_key", "bench", "--name", "bench"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        server = self._spawn("switchboard", daphne_command(port), env)
        url = f"http://127.0.0.1:{port}/api/v1"
        _wait_http(url + "/models", {"Authorization": f"Bearer {key}"}, server, 60)
        self.targets["switchboard"] = {"url": url, "key": key, "pid": server.pid}

    def _start_litellm(self, upstream: str) -> None:
        port = free_port()
        config = self.workdir / "litellm.yaml"
        config.write_text(
            json.dumps(
                {
                    "model_list": [
                        {
                            "model_name": MODEL,
                            "litellm_params": {
                                "model": f"openai/{MODEL}",
                                "api_base": upstream,
                                "api_key": GATEWAY_KEY,
                            },
                        }
                    ],
                    "general_settings": {"master_key": LITELLM_KEY},
                    "litellm_settings": {"telemetry": False, "drop_params": True},
                }
            )  # JSON is YAML
        )
        # No DATABASE_URL at all: LiteLLM then runs without a database (an empty one is refused).
        env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"} | {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download at start
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOG": "ERROR",
        }
        argv = [
            self.litellm,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        server = self._spawn("litellm", argv, env)
        url = f"http://127.0.0.1:{port}/v1"
        _wait_http(url + "/models", {"Authorization": f"Bearer {LITELLM_KEY}"}, server, 180)
        self.targets["litellm"] = {"url": url, "key": LITELLM_KEY, "pid": server.pid}

    def stop(self) -> None:
        for process in reversed(self.started):
            process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


async def _one_stream(
    client: httpx.AsyncClient, target: dict[str, Any], n: int
) -> tuple[float, int]:
    """(seconds to the first body byte, SSE data lines received) of one streamed answer."""
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": f"#chunks={CHUNKS} bench stream {n}"}],
    }
    headers = {"Authorization": f"Bearer {target['key']}"}
    began = time.perf_counter()
    first = None
    lines = 0
    async with client.stream(
        "POST", target["url"] + "/chat/completions", json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{target['url']}: {response.status_code} {await response.aread()}")
        async for chunk in response.aiter_bytes():
            if first is None:
                first = time.perf_counter() - began
            lines += chunk.count(b"data:")
    return first or 0.0, lines


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _level(target: dict[str, Any], concurrency: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        await _one_stream(client, target, -1)  # warm: connection, caches, model list
        ttfb: list[float] = []
        errors: list[str] = []
        lines = 0
        cpu_before = _tree_cpu(target["pid"])
        for wave in range(WAVES[concurrency]):
            results = await asyncio.gather(
                *(_one_stream(client, target, wave * concurrency + i) for i in range(concurrency)),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    errors.append(f"{type(result).__name__}: {result}"[:200])
                else:
                    ttfb.append(result[0])
                    lines += result[1]
        cpu = _tree_cpu(target["pid"]) - cpu_before
    if not ttfb:
        raise RuntimeError(f"{target['url']}: every stream failed: {errors[:3]}")
    return {
        "streams": len(ttfb),
        "failed": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "ttfb_p50_ms": _pct(ttfb, 0.5) * 1000,
        "ttfb_p99_ms": _pct(ttfb, 0.99) * 1000,
        "chunks": lines,
        "cpu_us_per_chunk": cpu / lines * 1e6 if lines else None,
    }


def measure(litellm: str | None = None) -> dict[str, Any]:
    """{level: {target: figures}}, with ``added_*`` relative to the direct gateway."""
    # Kept after the run: the processes' logs are there when something failed.
    tmp = tempfile.mkdtemp(prefix="bench-peers-")
    print(f"logs in {tmp}", file=sys.stderr)
    processes = Processes(Path(tmp), litellm)
    try:
        processes.start()
        results: dict[str, Any] = {}
        for level in LEVELS:
            row = {}
            for name, target in processes.targets.items():
                row[name] = asyncio.run(_level(target, level))
                print(f"{level} streams, {name}: {row[name]}", file=sys.stderr, flush=True)
            for figures in row.values():
                figures["added_p50_ms"] = figures["ttfb_p50_ms"] - row["direct"]["ttfb_p50_ms"]
                figures["added_p99_ms"] = figures["ttfb_p99_ms"] - row["direct"]["ttfb_p99_ms"]
            results[str(level)] = row
        results["machine"] = {"cpus": os.cpu_count(), "load": os.getloadavg()}
        return results
    finally:
        processes.stop()


def table(results: dict[str, Any]) -> str:
    lines = [
        "| streams | target | TTFB p50 | TTFB p99 | added p50 | added p99 | CPU/chunk | failed |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in LEVELS:
        for name, f in results[str(level)].items():
            cpu = f["cpu_us_per_chunk"]
            cpu_text = "n/a" if cpu is None else f"{cpu:.0f} µs"
            lines.append(
                f"| {level} | {name} | {f['ttfb_p50_ms']:.1f} ms | {f['ttfb_p99_ms']:.1f} ms | "
                f"{f['added_p50_ms']:+.1f} ms | {f['added_p99_ms']:+.1f} ms | {cpu_text} | "
                f"{f['failed']} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--litellm", default=str(ROOT / ".venv-peers" / "bin" / "litellm"))
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    litellm = None if args.no_litellm else str(Path(args.litellm).resolve())
    if litellm and not Path(litellm).exists():
        print(
            f"{litellm} not found: run `make bench-peers` (or pass --no-litellm)", file=sys.stderr
        )
        return 2
    began = time.monotonic()
    results = measure(litellm)
    print(table(results))
    print(f"\n{time.monotonic() - began:.0f} s, load average before/after: {results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

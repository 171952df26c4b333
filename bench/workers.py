"""Two Daphne workers on one machine (PostgreSQL + Redis): relay throughput per core, and what a
viewer on the other worker than the runner waits more than one on the runner's own.

    eval "$(bash .ci/services.sh)"   # PostgreSQL and Redis, as for `make test-scaleout`
    .venv/bin/python bench/workers.py [--streams 100] [--chunks 100] [--probes 10]

Uses ``DATABASE_URL``/``REDIS_URL`` from the environment, else the servers ``.ci/services.sh``
left running (its ``$SERVICES_DIR/env``, as CI's ``make test-scaleout`` leaves them); without
either, ``measure()`` returns ``{"skipped": …}`` and the figure says so. Creates a database and
a Redis prefix of its own (dropped at the end), the bench seed, a demo gateway and two workers.

- **cross-worker viewer**: ``--probes`` turns one after another, each on a thread open in
  three sockets: the sender's and a second viewer on worker A (which runs the turn), a viewer
  on worker B. Each delta fragment's arrival on a viewer minus its arrival on the sender's
  socket; added = worker B's viewers minus worker A's (p50, p99).
- **throughput**: ``--streams`` turns of ``--chunks`` chunks at 50 chunks/s, half sent to
  each worker, each watched by a viewer on the other worker; both workers' CPU (and Redis's)
  over the scenario ÷ chunks relayed; streams per core = 1 s ÷ (CPU per chunk x 50).

``measure() -> dict`` returns the figures for ``bench/run.py`` (#16).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    PASSWORD,
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

API_KEY = "bench-gateway-key"
DELAY_MS = 20  # 50 chunks/s per stream
GOAL_ADDED_P50_MS = 5.0


def services() -> tuple[str, str] | None:
    """PostgreSQL and Redis URLs: the environment's, else those ``.ci/services.sh`` started."""
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not (database_url and redis_url):
        env_file = Path(os.environ.get("SERVICES_DIR", "/tmp/switchboard-services")) / "env"
        if env_file.exists():
            found = dict(
                line.removeprefix("export ").split("=", 1)
                for line in env_file.read_text().splitlines()
                if line.startswith("export ") and "=" in line
            )
            database_url, redis_url = found.get("DATABASE_URL", ""), found.get("REDIS_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")) and redis_url:
        return database_url, redis_url
    return None


def unreachable(database_url: str, redis_url: str) -> str:
    """Why PostgreSQL or Redis does not answer (an env file left by stopped servers), or ""."""
    import psycopg
    import redis

    try:
        psycopg.connect(database_url, connect_timeout=3).close()
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as exc:
        return f"PostgreSQL/Redis not answering ({type(exc).__name__})"
    return ""


def _pct(values: list[float]) -> dict[str, Any]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}


class Cluster:
    """A database, a Redis prefix, the demo gateway and two workers, all this script's own."""

    def __init__(self, database_url: str, redis_url: str, workdir: Path) -> None:
        from tests.support import databases

        self.db = databases
        self.database_url, self.redis_url = database_url, redis_url
        self.name = f"sb_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir
        self.processes: list[Process] = []
        gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DEMO_"))
        } | {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": databases.with_database(database_url, self.name),
            "REDIS_URL": redis_url,
            "CHANNEL_LAYER_PREFIX": self.prefix,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "SWITCHBOARD_DATA_DIR": str(workdir / "data"),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEMO_GATEWAY_ENABLED": "0",
            "RATE_LIMIT_PER_MINUTE": "0",
            "MAX_RUNNING_TURNS": "0",
            "AUTO_TITLES": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self._gateway_port = gateway_port
        self.urls: list[str] = []

    def start(self, threads: int) -> dict[str, Any]:
        self.db.create_database(self.database_url, self.name)
        run = {"cwd": ROOT, "env": self.env, "capture_output": True, "text": True, "check": True}
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], timeout=300, **run)
        seed = json.loads(
            subprocess.run(
                [
                    PYTHON,
                    str(ROOT / "bench" / "seed.py"),
                    f"--gateway={self.gateway_url}",
                    f"--api-key={API_KEY}",
                    "--users=4",
                    f"--threads={threads}",
                    "--page-turns=1",
                    f"--password={PASSWORD}",
                ],
                timeout=300,
                **run,
            ).stdout
        )
        gateway = self._spawn(
            "gateway", demo_gateway_command(self._gateway_port, api_key=API_KEY, delay_ms=DELAY_MS)
        )
        auth = {"Authorization": f"Bearer {API_KEY}"}
        wait_http(self.gateway_url + "/models", gateway, headers=auth)
        for index in range(2):
            port = free_port()
            worker = self._spawn(f"worker{index}", daphne_command(port))
            self.urls.append(f"http://127.0.0.1:{port}")
            wait_http(self.urls[-1] + "/accounts/login/", worker)
        return seed

    def _spawn(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.env, self.workdir / f"{name}.log")
        self.processes.append(process)
        return process

    @property
    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.processes[1:]]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if os.environ.get("BENCH_KEEP_LOGS"):
            for log in self.workdir.glob("*.log"):
                (Path(os.environ["BENCH_KEEP_LOGS"]) / log.name).write_bytes(log.read_bytes())
        try:
            self.db.drop_database(self.database_url, self.name)
        finally:
            self.db.delete_prefix(self.redis_url, self.prefix)


async def _viewer(sock: Any, marker: str, seen: dict[str, float], done: asyncio.Event) -> None:
    """Arrival time of each delta fragment on one socket, until the turn's end."""
    import loadgen

    async for raw in sock.ws:
        text = raw if isinstance(raw, str) else raw.decode()
        if loadgen.DELTA in text:
            seen.setdefault(text, time.perf_counter())
        finished = loadgen.REPLACED.search(text)
        if finished and finished.group(1) != "in_progress" and marker in text:
            done.set()
            return


async def _open(url: str, cookies: dict[str, str], thread_id: int) -> Any:
    import loadgen

    sock = loadgen.AppSocket(url, cookies, thread_id)
    await sock.open(None)
    return sock


async def _cross_worker(cluster: Cluster, sessions: list, seed: dict, probes: int) -> dict:
    import loadgen

    same, other = [], []
    a, b = cluster.urls
    for index, (tid, owner) in enumerate(seed["threads"][:probes]):
        cookies = sessions[owner]
        sender, near, far = [await _open(url, cookies, tid) for url in (a, a, b)]
        await asyncio.sleep(0.2)  # presence settles
        times: list[dict[str, float]] = [{}, {}]
        done = [asyncio.Event(), asyncio.Event()]
        readers = [
            asyncio.create_task(_viewer(sock, 'data-status="', times[i], done[i]))
            for i, sock in enumerate((near, far))
        ]
        stream = loadgen.Stream(index, tid, loadgen._message("probe", index, 100, DELAY_MS))
        await sender.run(stream, time.monotonic() + 60)
        await asyncio.wait_for(asyncio.gather(*(d.wait() for d in done)), 30)
        for reader in readers:
            reader.cancel()
        # The sender's own delta times, matched by the fragment (built once by the runner).
        base = stream.deltas
        for seen, out in ((times[0], same), (times[1], other)):
            arrivals = sorted(seen.values())
            out.extend((t - s) * 1000 for t, s in zip(arrivals, base, strict=False))
        for sock in (sender, near, far):
            await sock.close()
    return {"same_worker_ms": _pct(same), "other_worker_ms": _pct(other)}


async def _throughput(cluster: Cluster, sessions: list, seed: dict, n: int, chunks: int) -> dict:
    import loadgen

    threads = seed["threads"][-n:]
    a, b = cluster.urls
    senders, viewers = [], []
    for i, (tid, owner) in enumerate(threads):
        here, there = (a, b) if i % 2 == 0 else (b, a)
        senders.append(await _open(here, sessions[owner], tid))
        viewers.append(await _open(there, sessions[owner], tid))
    redis_pid = _redis_pid()
    pids = cluster.worker_pids
    await asyncio.sleep(0.5)
    cpu0 = [cpu_seconds(p) for p in pids]
    redis0 = cpu_seconds(redis_pid) if redis_pid else None
    t0 = time.monotonic()
    streams = [
        loadgen.Stream(i, tid, loadgen._message("relay", i, chunks, DELAY_MS))
        for i, (tid, _) in enumerate(threads)
    ]
    deadline = time.monotonic() + chunks * DELAY_MS / 1000 * 4 + 60
    done = [asyncio.Event() for _ in streams]
    watch = [
        asyncio.create_task(_viewer(v, 'data-status="', {}, d))
        for v, d in zip(viewers, done, strict=True)
    ]
    await asyncio.gather(*(s.run(st, deadline) for s, st in zip(senders, streams, strict=True)))
    await asyncio.wait(watch, timeout=30)
    wall = time.monotonic() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - sum(cpu0)
    redis_cpu = cpu_seconds(redis_pid) - redis0 if redis_pid and redis0 is not None else None
    for task in watch:
        task.cancel()
    for sock in senders + viewers:
        await sock.close()
    # Completed counts even without a delta seen: an answer done before its announcement
    # reached the sockets arrives whole in the finished fragment (a time-to-first-token matter).
    ok = sum(s.status == "completed" for s in streams)
    no_delta = sum(s.status == "completed" and s.first is None for s in streams)
    failed_threads = [st.thread_id for st in streams if st.status != "completed"]
    turns = (
        cluster.db.rows(
            cluster.env["DATABASE_URL"],
            "SELECT thread_id, status, length(output_text) AS chars, error FROM chat_turn"
            " WHERE thread_id = ANY(%s)",
            (failed_threads,),
        )
        if failed_threads
        else []
    )
    relayed = ok * chunks
    us_per_chunk = cpu / relayed * 1e6 if relayed else None
    return {
        "streams": n,
        "failed": n - ok,
        "completed_without_a_delta": no_delta,
        "failures": [f"{s.status}: {s.error}" for s in streams if s.status != "completed"][:3],
        "failed_turns": [{k: str(v) for k, v in row.items()} for row in turns[:3]],
        "viewers_finished": sum(d.is_set() for d in done),
        "wall_s": round(wall, 1),
        "workers_cpu_s": round(cpu, 2),
        "redis_cpu_s": None if redis_cpu is None else round(redis_cpu, 2),
        "chunks_relayed": relayed,
        "cpu_us_per_chunk": us_per_chunk,
        "streams_per_core": 1e6 / (us_per_chunk * 1000 / DELAY_MS) if us_per_chunk else None,
        "chunks_per_cpu_second": relayed / cpu if cpu else None,
    }


def _redis_pid() -> int | None:
    path = Path(os.environ.get("SERVICES_DIR", "/tmp/switchboard-services")) / "redis.pid"
    try:
        pid = int(path.read_text().strip())
        cpu_seconds(pid)
        return pid
    except (OSError, ValueError):
        return None


async def _measure(cluster: Cluster, seed: dict, streams: int, chunks: int, probes: int) -> dict:
    import loadgen

    sessions = await loadgen._bounded(
        [loadgen.login(cluster.urls[0], name, PASSWORD) for name in seed["users"]], 2
    )
    cross = await _cross_worker(cluster, sessions, seed, probes)
    relay = await _throughput(cluster, sessions, seed, streams, chunks)
    return {"cross_worker": cross, "throughput": relay}


def measure(streams: int = 100, chunks: int = 100, probes: int = 10) -> dict[str, Any]:
    found = services()
    if found is None:
        return {"skipped": 'no PostgreSQL/Redis: start them with `eval "$(bash .ci/services.sh)"`'}
    if problem := unreachable(*found):
        return {"skipped": problem}
    with tempfile.TemporaryDirectory(prefix="switchboard-workers-") as tmp:
        cluster = Cluster(*found, Path(tmp))
        try:
            seed = cluster.start(probes + streams + 10)
            result = asyncio.run(_measure(cluster, seed, streams, chunks, probes))
        finally:
            cluster.stop()
    cross = result["cross_worker"]
    same, other = cross["same_worker_ms"], cross["other_worker_ms"]
    added = None
    if same["p50"] is not None and other["p50"] is not None:
        added = {"p50": other["p50"] - same["p50"], "p99": other["p99"] - same["p99"]}
    return {**result, "added_ms": added, "goal_added_p50_ms": GOAL_ADDED_P50_MS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--probes", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(measure(args.streams, args.chunks, args.probes), indent=2))


if __name__ == "__main__":
    main()

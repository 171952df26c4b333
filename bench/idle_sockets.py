"""What idle websockets cost a Daphne process: RSS per socket and CPU while nothing happens.

    .venv/bin/python bench/idle_sockets.py [--sockets 1000 5000] [--idle-seconds 30]

Builds a throwaway database (migrations, then ``bench/seed.py``: users and one empty thread per
socket), starts the app under Daphne as ``bench/run.py`` does (DEBUG off, in-memory channel
layer), logs the users in through the login form, then opens authenticated websockets to their
threads as a browser does (cookie, Origin), one per thread, in steps up to each level. At each
level: Daphne's RSS growth since the warm base ÷ sockets open, and Daphne's CPU (utime + stime)
over ``--idle-seconds`` with every socket open and idle (Daphne's pings, presence, timers).
Raises this process's open-file limit to its hard limit (the server inherits it).

``measure() -> dict`` returns the figures for ``bench/run.py`` (#15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    PASSWORD,
    PYTHON,
    ROOT,
    Process,
    cpu_seconds,
    daphne_command,
    free_port,
    wait_http,
)

GOAL_KB_EACH = 30.0
GOAL_CPU_PERCENT = 2.0
WARM_SOCKETS = 20  # opened and kept before the base reading: first-use imports and caches
USERS = 8


def raise_file_limit(needed: int) -> int:
    """Soft open-file limit up to the hard one; refuses to run when even that is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"{needed} sockets need {needed} open files; the hard limit is {hard}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def app_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DEMO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH"):
        env.pop(name, None)
    return env | {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEMO_GATEWAY_ENABLED": "0",
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }


def prepare(env: dict[str, str], threads: int) -> dict[str, Any]:
    def run(argv: list[str]) -> str:
        return subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
        ).stdout

    run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"])
    return json.loads(
        run(
            [
                PYTHON,
                str(ROOT / "bench" / "seed.py"),
                "--gateway=http://127.0.0.1:9/v1",  # never called: no turn is sent
                "--api-key=unused",
                f"--users={USERS}",
                f"--threads={threads}",
                "--page-turns=1",
                f"--password={PASSWORD}",
            ]
        )
    )


async def _idle_cpu(pid: int, seconds: float) -> dict[str, float]:
    before, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    used, wall = cpu_seconds(pid) - before, time.monotonic() - t0
    return {"cpu_s": round(used, 3), "wall_s": round(wall, 1), "cpu_percent": used / wall * 100}


async def _measure_levels(
    app_url: str, pid: int, seed: dict[str, Any], levels: list[int], idle_seconds: float
) -> dict[str, Any]:
    import loadgen

    sessions = await loadgen._bounded(
        [loadgen.login(app_url, name, PASSWORD) for name in seed["users"]], 2
    )
    threads = seed["threads"]
    sockets: list[loadgen.AppSocket] = []

    async def open_up_to(n: int) -> None:
        async def one(tid: int, owner: int) -> None:
            sock = loadgen.AppSocket(app_url, sessions[owner], tid)
            await sock.open(None)
            sockets.append(sock)

        todo = threads[len(sockets) : n]
        await loadgen._bounded([one(tid, owner) for tid, owner in todo], 32)

    results: dict[str, Any] = {}
    try:
        await open_up_to(WARM_SOCKETS)
        base = await loadgen.settle_rss(pid, 2.0)
        results["rss_base_kb"] = base
        for level in levels:
            t = time.monotonic()
            await open_up_to(WARM_SOCKETS + level)
            opened_s = time.monotonic() - t
            rss = await loadgen.settle_rss(pid, 3.0)
            idle = await _idle_cpu(pid, idle_seconds)
            results[str(level)] = {
                "sockets": level,
                "rss_kb": rss,
                "kb_each": (rss - base) / level,
                "open_seconds": round(opened_s, 1),
                **idle,
            }
            print(json.dumps({"level": level, **results[str(level)]}), flush=True)
    finally:
        await loadgen._bounded([sock.close() for sock in sockets], 200)
    return results


def measure(sockets: list[int] | None = None, idle_seconds: float = 30.0) -> dict[str, Any]:
    levels = sorted(sockets or [1000, 5000])
    limit = raise_file_limit(levels[-1] * 2 + WARM_SOCKETS + 200)
    with tempfile.TemporaryDirectory(prefix="switchboard-idle-") as tmp:
        port = free_port()
        env = app_env(Path(tmp) / "data", port)
        seed = prepare(env, levels[-1] + WARM_SOCKETS)
        app = Process("app (daphne)", daphne_command(port), env, Path(tmp) / "daphne.log")
        try:
            app_url = f"http://127.0.0.1:{port}"
            wait_http(app_url + "/accounts/login/", app)
            results = asyncio.run(_measure_levels(app_url, app.pid, seed, levels, idle_seconds))
            if not app.alive():
                raise RuntimeError(f"Daphne died:\n{app.log_tail()}")
        finally:
            app.stop()
    top = results[str(levels[-1])]
    return {
        "levels": results,
        "idle_seconds": idle_seconds,
        "open_files_limit": limit,
        "kb_each": top["kb_each"],
        "cpu_percent": top["cpu_percent"],
        "goal_kb_each": GOAL_KB_EACH,
        "goal_cpu_percent": GOAL_CPU_PERCENT,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.sockets, args.idle_seconds), indent=2))


if __name__ == "__main__":
    main()

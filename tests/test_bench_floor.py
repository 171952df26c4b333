"""bench/floor.py (the floor of the stack: a bare Daphne + httpx relay) still relays every chunk,
so its figures cannot silently measure nothing. No timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Times the event loop or loads the machine: run alone, not beside other tests (make test).
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent


def test_the_bare_relay_delivers_every_chunk_in_each_mode_and_stack(tmp_path):
    out = tmp_path / "floor.json"
    argv = [sys.executable, "bench/floor.py", "--streams", "2", "--chunks", "10", "--ramp", "0"]
    argv += ["--stack", "stock,lean", "--probes", "2", "--json", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(out.read_text())
    assert sorted(runs) == [
        "coalesced lean 2",
        "coalesced stock 2",
        "per-event lean 2",
        "per-event stock 2",
    ]
    for key, (run,) in runs.items():
        assert run["complete"] == 2, key
        assert run["chunks_relayed"] == 20, key
        assert run["errors"] == [], key
        # Each first-token probe came back through the relay and straight from the gateway.
        assert len(run["probes"]["relay_ms"]) == len(run["probes"]["direct_ms"]) == 2, key
        assert all(ms > 0 for ms in run["probes"]["relay_ms"] + run["probes"]["direct_ms"]), key
        if key.startswith("coalesced"):
            assert run["frames"] < 20, key  # deltas 20 ms apart, joined per 40 ms window
        else:
            assert run["frames"] == 20, key

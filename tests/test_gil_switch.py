"""The serving process hands the GIL to its database thread sooner than Python's default."""

import subprocess
import sys


def test_the_asgi_application_sets_the_switch_interval_from_the_setting(tmp_path):
    # A fresh process: importing project.asgi tunes that process (as Daphne does at start).
    code = (
        "import sys, project.asgi; "
        "print(round(sys.getswitchinterval() * 1000, 3))"
    )
    env = {"GIL_SWITCH_INTERVAL_MS": "2", "DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()[-1]
    assert shown == "2.0"

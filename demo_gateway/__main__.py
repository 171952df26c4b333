"""``python -m demo_gateway --port 9100``: serve the demo gateway with Daphne."""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    """``python -m demo_gateway --port 9100``: serve the demo gateway with Daphne."""
    parser = argparse.ArgumentParser(description="Serve the Switchboard demo gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", help="require this Bearer key (default: $DEMO_API_KEY)")
    parser.add_argument("--delay-ms", type=int, help="pause between chunks (default 20)")
    parser.add_argument("--words-per-chunk", type=int)
    args = parser.parse_args(argv)
    # Daphne imports a fresh copy of this module, which reads its settings from the environment.
    for name, value in (
        ("DEMO_API_KEY", args.api_key),
        ("DEMO_CHUNK_DELAY_MS", args.delay_ms),
        ("DEMO_WORDS_PER_CHUNK", args.words_per_chunk),
    ):
        if value is not None:
            os.environ[name] = str(value)
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(
        ["-b", args.host, "-p", str(args.port), "demo_gateway.asgi:application"]
    )


if __name__ == "__main__":
    main()

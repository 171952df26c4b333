"""``python -m tests.mcp_server --port 8765 [--transport sse] [--token T] [--name N]``"""

from __future__ import annotations

import argparse

from tests.mcp_server.server import build


def main() -> None:
    parser = argparse.ArgumentParser(description="Switchboard's example MCP server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--transport", choices=["streamable-http", "sse"], default="streamable-http"
    )
    parser.add_argument("--token", default="", help="the X-Test-Token the `secret` tool wants")
    parser.add_argument("--name", default="test-tools")
    args = parser.parse_args()
    server = build(args.name, args.token)
    server.settings.log_level = "WARNING"
    server.run(args.transport, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

"""A small MCP server (the SDK's ``MCPServer``, formerly ``FastMCP``) with one tool per case
Switchboard must handle: text, structured content, an image, a slow call, a failing call, a
call that needs a header token, an oversized result, and a tool that adds a tool (so the
server announces that its list changed)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import zlib

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import CallToolResult

TOKEN_HEADER = "x-test-token"


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, written by hand so the server needs nothing but the SDK."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + bytes(rgb) * width
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


RED_PIXEL_PNG = _png(2, 2, (220, 30, 30))
RED_PIXEL_BASE64 = base64.b64encode(RED_PIXEL_PNG).decode()


def build(name: str = "test-tools", token: str = "") -> MCPServer:
    server = MCPServer(name)

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="The weather in a city, as structured data.")
    def weather(city: str) -> CallToolResult:
        # Structured content only (no text block): the client must send it on as JSON.
        return CallToolResult(
            content=[], structured_content={"city": city, "temperature_c": 21, "sky": "clear"}
        )

    @server.tool(description="A small red image.")
    def red_square() -> Image:
        return Image(data=RED_PIXEL_PNG, format="png")

    @server.tool(description="Wait this many seconds, then answer.")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"waited {seconds} s"

    @server.tool(description="Always fails.")
    def broken(reason: str) -> str:
        raise RuntimeError(f"broken on purpose: {reason}")

    @server.tool(description="A long answer (50,000 characters).")
    def long_text() -> str:
        return "x" * 50_000

    @server.tool(description="Answers only when the request carries the expected header token.")
    def secret(ctx: Context) -> str:
        request = ctx.request_context.request
        sent = request.headers.get(TOKEN_HEADER, "") if request is not None else ""
        if not token or sent != token:
            raise PermissionError("missing or wrong token header")
        return "token accepted"

    @server.tool(description="Add a tool named `name`, and say the list of tools changed.")
    async def add_tool(name: str, ctx: Context) -> str:
        def added() -> str:
            return f"{name} was added at run time"

        server.add_tool(added, name=name, description=f"Added at run time: {name}")
        # Both eras: 2026 clients hear it on their subscriptions/listen stream, older ones on
        # the session's own stream.
        await ctx.notify_tools_changed()
        with contextlib.suppress(Exception):  # a 2026 connection has no back-channel for it
            await ctx.request_context.session.send_tool_list_changed()
        return f"added {name}"

    return server

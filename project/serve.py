"""``python -m project.serve [daphne arguments]``: Daphne on uvloop.

Daphne creates its event loop when ``daphne.server`` is imported (``asyncio.new_event_loop()``,
then Twisted's asyncio reactor on it), so the event loop policy must be uvloop's before that
import: this module sets it, then runs Daphne's own command line. uvloop's loop (libuv, in C)
costs less per socket read, write and wake-up than asyncio's selector loop, and the relay does
a few of each per streamed chunk. Without uvloop installed it is plain Daphne."""

from __future__ import annotations

import asyncio
import contextlib


def main() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()

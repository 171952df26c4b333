"""Uploads must not stop the event loop under Daphne.

Twisted's ``http.Request`` parses a ``multipart/form-data`` body itself, on the reactor (the
event loop every socket and answer shares), with the ``email`` package, to fill
``request.args``, which Daphne never reads: Django parses the body again, in its thread
pool. Measured (bench/attachments.py): a 10 MB upload stopped every streaming answer for
about 1.2 s. Twisted has a switch for it (``parsePOSTFormSubmission``); Daphne does not pass
it, so it is set here for Daphne's request class."""

from __future__ import annotations

import sys


def install() -> bool:
    """Under Daphne: its requests keep their bodies unparsed. Returns whether it applied."""
    module = sys.modules.get("daphne.http_protocol")
    if module is None or getattr(module.WebRequest, "_unparsed_bodies", False):
        return False
    original = module.WebRequest.__init__

    def init(self, *args, **kwargs) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    module.WebRequest.__init__ = init
    module.WebRequest._unparsed_bodies = True
    return True

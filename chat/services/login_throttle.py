"""Who may get in: login throttling (failures per IP and per username) and sign-up domains.

Failures are counted in Django's cache, so several server processes share the counts when the
cache is shared (e.g. Redis); with the default in-process cache each process counts its own.
Failed logins and lockouts go to the audit log; staff see and clear lockouts in the admin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.translation import ngettext

from chat.services import audit


def client_ip(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or the last address in ``LOGIN_CLIENT_IP_HEADER``
    (the one the reverse proxy in front of Switchboard added) when that is configured."""
    header = settings.LOGIN_CLIENT_IP_HEADER
    if header:
        forwarded = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
        if addresses:
            return addresses[-1]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


LOCKOUT_INDEX_KEY = "login-lockouts"
LOCKOUT_INDEX_LOCK_KEY = "login-lockouts:lock"
# The staff page lists at most this many lockouts (the newest); the oldest drop out first.
LOCKOUT_INDEX_SIZE = 500


def normalise_username(username: str) -> str:
    """The key a username's failures count under: the name authentication would look up (NFKC,
    as Django's username field and ``normalize_username`` apply), stripped and case-folded, so
    fullwidth ``eve``, ``EVE`` and `` eve`` share one count with ``eve``."""
    normal = get_user_model().normalize_username(username).strip().casefold()
    return unicodedata.normalize("NFKC", normal)  # case folding can leave non-NFKC text


def _normalise(kind: str, value: str) -> str:
    return normalise_username(value) if kind == "user" else value.strip().lower()


def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(_normalise(kind, value).encode()).hexdigest()[:32]


def _keys(kind: str, value: str) -> tuple[str, str]:
    digest = _digest(kind, value)
    return f"login-failures:{kind}:{digest}", f"login-failures:{kind}:{digest}:until"


def _limits() -> list[tuple[str, int]]:
    return [
        ("ip", settings.LOGIN_FAILURES_PER_IP),
        ("user", settings.LOGIN_FAILURES_PER_USERNAME),
    ]


def _limit(kind: str) -> int:
    return dict(_limits())[kind]


def login_blocked_for(ip: str, username: str) -> int:
    """Seconds until this IP or username may try again; 0 when not blocked."""
    now = time.time()
    wait = 0.0
    for (kind, limit), value in zip(_limits(), (ip, username), strict=True):
        if limit and value:
            wait = max(wait, seconds_blocked(*_keys(kind, value), limit=limit, now=now))
    return math.ceil(wait) if wait > 0 else 0


def seconds_blocked(count_key: str, until_key: str, *, limit: int, now: float) -> float:
    """How long a failure counter at or over ``limit`` still blocks (0 when it does not)."""
    if (cache.get(count_key) or 0) < limit:
        return 0.0
    return max(0.0, (cache.get(until_key) or now) - now)


def count_failure(count_key: str, until_key: str, *, window: int) -> int:
    """One more failure in the fixed window that the first failure started; the new count.
    ``add`` + ``incr`` are atomic in every cache backend, so concurrent failures all count."""
    cache.add(until_key, time.time() + window, window)
    cache.add(count_key, 0, window)
    try:
        return cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, window)
        return 1


def record_login_failure(ip: str, username: str) -> None:
    """Count a failed login for the IP and the username, in the audit log too; the attempt that
    reaches a limit locks that IP or username out (recorded, and listed for staff)."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    audit.record_event(
        None,
        object_type=AUDIT_OBJECT,
        object_repr=username[:200],
        action="login failed",
        field="client IP",
        new=ip[:100],
    )
    for (kind, limit), value in zip(_limits(), (ip, username), strict=True):
        if not limit or not value:
            continue
        count_key, until_key = _keys(kind, value)
        count = count_failure(count_key, until_key, window=window)
        if count == limit:
            _lock_out(kind, value, count, cache.get(until_key) or time.time() + window)


def clear_login_failures(username: str) -> None:
    """A successful login forgets the username's failures (the IP's count stays)."""
    cache.delete_many(_keys("user", username))


# -- lockouts, for staff (an index in the cache: neither locmem nor Redis can list keys) ----------

AUDIT_OBJECT = "login"


@dataclass(frozen=True)
class Lockout:
    kind: str  # "ip" or "user"
    value: str  # the normalised username or the address
    failures: int
    until: float  # a timestamp

    @property
    def id(self) -> str:
        return f"{self.kind}:{_digest(self.kind, self.value)}"

    @property
    def label(self) -> str:
        return f"{'username' if self.kind == 'user' else 'IP'} {self.value}"[:200]

    @property
    def until_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.until, tz=dt.UTC)


@contextmanager
def _index_lock() -> Iterator[None]:
    """Workers sharing Redis update the index one at a time (``add`` is atomic there); a lock
    left by a crashed worker expires after a few seconds."""
    deadline = time.monotonic() + 2
    acquired = cache.add(LOCKOUT_INDEX_LOCK_KEY, 1, 5)
    while not acquired and time.monotonic() < deadline:
        time.sleep(0.01)
        acquired = cache.add(LOCKOUT_INDEX_LOCK_KEY, 1, 5)
    try:
        yield
    finally:
        if acquired:
            cache.delete(LOCKOUT_INDEX_LOCK_KEY)


def _update_index(change: Callable[[dict], None]) -> None:
    with _index_lock():
        index = cache.get(LOCKOUT_INDEX_KEY) or {}
        change(index)
        now = time.time()
        alive = sorted(
            ((key, entry) for key, entry in index.items() if entry["until"] > now),
            key=lambda item: item[1]["until"],
        )[-LOCKOUT_INDEX_SIZE:]
        cache.set(LOCKOUT_INDEX_KEY, dict(alive), settings.LOGIN_FAILURE_WINDOW_SECONDS)


def _lock_out(kind: str, value: str, failures: int, until: float) -> None:
    lockout = Lockout(kind, _normalise(kind, value), failures, until)

    def add(index: dict) -> None:
        index[lockout.id] = {"kind": kind, "value": lockout.value, "until": until}

    _update_index(add)
    until_text = f"{lockout.until_datetime:%Y-%m-%d %H:%M:%S} UTC"
    _record(None, lockout, "locked out", new=f"{failures} (until {until_text})")


def _record(actor, lockout: Lockout, action: str, **change: object) -> None:
    """An audit log entry about the failed logins of a locked-out username or IP."""
    audit.record_event(
        actor,
        object_type=AUDIT_OBJECT,
        object_repr=lockout.label,
        action=action,
        field="failed logins",
        **change,
    )


def current_lockouts() -> list[Lockout]:
    """Usernames and IPs refused right now, with their failure counts, newest first."""
    found = []
    for entry in (cache.get(LOCKOUT_INDEX_KEY) or {}).values():
        kind, value = entry["kind"], entry["value"]
        count_key, until_key = _keys(kind, value)
        failures, until = cache.get(count_key) or 0, cache.get(until_key)
        limit = _limit(kind)
        if limit and failures >= limit and until and until > time.time():
            found.append(Lockout(kind, value, failures, until))
    return sorted(found, key=lambda lockout: lockout.until, reverse=True)


def clear_lockout(actor, lockout_id: str) -> Lockout | None:
    """Let that username or IP try again now (recorded in the audit log); None when it is no
    longer locked out."""
    lockout = next((item for item in current_lockouts() if item.id == lockout_id), None)
    if lockout is None:
        return None
    cache.delete_many(_keys(lockout.kind, lockout.value))
    _update_index(lambda index: index.pop(lockout.id, None))
    _record(actor, lockout, "lockout cleared", old=lockout.failures, new=0)
    return lockout


def wait_words(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    if seconds < 60:
        return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}
    return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}


# -- sign-up ------------------------------------------------------------------------------------


def parse_domains(text: str) -> list[str]:
    """``"example.com, Example.org\\n"`` → ``["example.com", "example.org"]``."""
    return [part.lstrip("@").lower() for part in re.split(r"[\s,;]+", text or "") if part]


def email_domain_allowed(email: str, domains: list[str]) -> bool:
    """True when no domains are configured, or the address is at one of them exactly."""
    if not domains:
        return True
    _, at, domain = (email or "").rpartition("@")
    return bool(at) and domain.lower() in domains

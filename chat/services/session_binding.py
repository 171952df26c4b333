"""Every websocket is bound to the login session that opened it.

A socket joins its user's group (``user-<id>``) and remembers its session key. Logging out ends
that session's sockets; a password change, a reset or a deactivation makes each of the user's
sockets check its session again (``session.check``), on every worker through the channel layer.
Each socket action re-checks too (``session_problem``, one query), so a missed message (the
in-memory layer does not reach other processes, such as ``manage.py shell``) lets nobody act.

Messages name a session by a digest of its key (``session_tag``), never the key itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable
from functools import wraps
from importlib import import_module

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import transaction
from django.db.models import QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_lazy as _

from chat import live
from chat.prepared_reads import PreparedRead

log = logging.getLogger(__name__)

# Lazy: each is shown in the language of whoever's page (or logout) it is rendered for.
LOGGED_OUT = _("You logged out. Log in again to continue.")
SESSION_ENDED = _("Your session has ended. Log in again to continue.")
PASSWORD_CHANGED = _("Your password was changed. Log in again with the new one.")
DEACTIVATED = _("Your account was deactivated or removed. Ask an administrator.")


def user_group(user_id: int) -> str:
    """The channel-layer group of every open socket of one user, on every worker."""
    return f"user-{int(user_id)}"


def session_tag(session_key: str | None) -> str:
    """Names a session in channel-layer messages without carrying its key."""
    return hashlib.sha256((session_key or "").encode()).hexdigest()[:32]


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _user_and_session(user_id: int, session_key: str, now: dt.datetime) -> QuerySet:
    sessions = (
        _session_store()
        .get_model_class()
        .objects.filter(session_key=session_key, expire_date__gt=now)
    )
    return (
        get_user_model()
        .objects.filter(pk=user_id)
        .annotate(session_data=Subquery(sessions.values("session_data")[:1]))
        .values_list("is_active", "password", "session_data")
    )


# Before every action of every socket: compiled once (chat.prepared_reads).
_USER_AND_SESSION = PreparedRead(_user_and_session, int, str, dt.datetime)


def session_problem(user_id: int, session_key: str | None) -> str | None:
    """Why this socket's session no longer lets it act (the text for the user), or None.

    One query: the user's row with the session's data. Mirrors what Django checks on every
    request: the session exists and is unexpired, names this user, and carries the hash of the
    user's current password; and the account is active. Needs a database-backed session engine
    (Django's default, the one Switchboard uses)."""
    store = _session_store()
    row = _USER_AND_SESSION.first_row(int(user_id), session_key or "", timezone.now())
    if row is None or not row[0]:
        return DEACTIVATED
    _, password, session_data = row
    data = store().decode(session_data) if session_data else {}
    if str(data.get(SESSION_KEY)) != str(user_id):
        return SESSION_ENDED
    user = get_user_model()(pk=user_id, password=password)
    if not constant_time_compare(data.get(HASH_SESSION_KEY) or "", user.get_session_auth_hash()):
        return PASSWORD_CHANGED
    return None


# -- telling the sockets -------------------------------------------------------------------------


def _send(user_id: int, message: live.SessionMessage) -> None:
    try:
        async_to_sync(live.publish_to_user)(user_group(user_id), message)
    except Exception:  # what changed is saved; each socket's next action re-checks anyway
        log.exception("could not tell user %s's sockets (%s)", user_id, message["type"])


def end_session_sockets(user_id: int, session_key: str | None, reason: str) -> None:
    """Close the sockets of one session at once (logout): they say ``reason``."""
    tag = session_tag(session_key)
    message = live.SessionEnded(type="session.ended", session=tag, reason=str(reason))
    _send(user_id, message)


def _check_now(user_ids: Iterable[int]) -> None:
    for user_id in set(user_ids):
        _send(user_id, live.SessionCheck(type="session.check"))


def check_sockets_after_commit(user_ids: Iterable[int]) -> None:
    """Make the users' sockets re-check their session once this change is committed."""
    ids = list(user_ids)
    if ids:
        transaction.on_commit(lambda: _check_now(ids))


def keeps_this_session(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For a password-change view. Django keeps the changing session logged in but gives it a
    new key (``update_session_auth_hash``); the user's other sessions end. The view runs in one
    transaction, so sockets check only once the new key and hash are stored; this session's
    sockets are told first to reconnect (the browser then presents the new key) instead."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        old_key = request.session.session_key
        if request.method != "POST" or not old_key:
            return view(request, *args, **kwargs)
        user_id = request.user.pk

        def reconnect() -> None:
            if request.session.session_key != old_key:
                tag = session_tag(old_key)
                _send(user_id, live.SessionRenewed(type="session.renewed", session=tag))

        with transaction.atomic():
            transaction.on_commit(reconnect)  # registered first: runs before the checks
            response = view(request, *args, **kwargs)
            if request.session.session_key != old_key:
                request.session.save()  # with its new hash, before the sockets check
        return response

    return wrapped

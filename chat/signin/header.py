"""Sign-in by a trusted reverse proxy's header (oauth2-proxy, Authelia, an SSO gateway).

The proxy authenticates the person and names them in ``TRUSTED_USER_HEADER`` (and their groups
in ``TRUSTED_GROUPS_HEADER``). Only requests from ``TRUSTED_PROXY_IPS`` may carry it: the same
header from any other address is refused (403) and logged, never trusted. HTTP requests go
through ``TrustedHeaderMiddleware`` (Django's ``RemoteUserMiddleware``), websockets through
``TrustedHeaderWebsocketMiddleware``; both end in ``identity.sign_in``.
"""

from __future__ import annotations

import ipaddress
import logging

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy as _

from chat.models import ExternalIdentity
from chat.signin.config import parse_group_list
from chat.signin.identity import ExternalPerson, SignInRefused, refuse, sign_in

log = logging.getLogger(__name__)

SESSION_GROUPS = "trusted_header_groups"


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def enabled() -> bool:
    return bool(settings.TRUSTED_USER_HEADER)


def is_trusted_address(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in settings.TRUSTED_PROXY_IPS)


def refuse_untrusted(address: str | None, where: str) -> None:
    refuse(
        ExternalIdentity.Kind.HEADER,
        f"{settings.TRUSTED_USER_HEADER} header on a {where} from {address or 'unknown'}, "
        "which is not in TRUSTED_PROXY_IPS: refused",
    )


def sign_in_from_header(username: str, groups_value: str | None):
    """The account named by a trusted proxy (created on first sight), with its teams in step
    with the groups header when one is configured. Raises ``SignInRefused``."""
    username = username.strip()
    if not username:
        raise refuse(ExternalIdentity.Kind.HEADER, _("The proxy sent an empty user name."))
    person = ExternalPerson(
        kind=ExternalIdentity.Kind.HEADER,
        issuer=settings.TRUSTED_USER_HEADER,
        subject=username,
        username=username,
        email=username if "@" in username else "",
        groups=None if groups_value is None else parse_group_list(groups_value),
    )
    identity = ExternalIdentity.objects.filter(
        kind=person.kind, issuer=person.issuer, subject=person.subject
    ).first()
    existing = None
    if identity is None:
        existing = get_user_model().objects.filter(username=username).first()
    return sign_in(person, admin_groups=settings.TRUSTED_ADMIN_GROUPS, user=existing)


class TrustedHeaderBackend(RemoteUserBackend):
    """Django's remote-user backend, but accounts are matched and created by ``identity``."""

    def authenticate(self, request, remote_user):
        if not enabled() or not remote_user:
            return None
        groups_value = _groups_value(request) if request is not None else None
        try:
            user = sign_in_from_header(remote_user, groups_value)
        except SignInRefused as refusal:
            if request is not None:
                request.signin_refused = str(refusal)
            return None
        if request is not None:
            request.trusted_groups_synced = groups_value
        return user


def _groups_value(request: HttpRequest) -> str | None:
    if not settings.TRUSTED_GROUPS_HEADER:
        return None
    return request.META.get(_meta_key(settings.TRUSTED_GROUPS_HEADER), "")


def _forbidden(request: HttpRequest, message: str) -> HttpResponse:
    body = render_to_string("registration/signin_refused.html", {"message": message}, request)
    return HttpResponse(body, status=403)


class TrustedHeaderMiddleware(RemoteUserMiddleware):
    """``RemoteUserMiddleware`` with the header named by ``TRUSTED_USER_HEADER``, honoured only
    from ``TRUSTED_PROXY_IPS``, and the groups header applied whenever it changes. Does nothing
    while ``TRUSTED_USER_HEADER`` is unset."""

    sync_capable = True
    async_capable = False

    @property
    def header(self) -> str:  # type: ignore[override]
        return _meta_key(settings.TRUSTED_USER_HEADER)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            return self.get_response(request)
        if self.header in request.META and not is_trusted_address(request.META.get("REMOTE_ADDR")):
            refuse_untrusted(request.META.get("REMOTE_ADDR"), "request")
            return _forbidden(
                request,
                "This request carries a sign-in header from an address "
                "that is not a trusted proxy.",
            )
        self.process_request(request)
        refused = getattr(request, "signin_refused", "")
        if refused:
            return _forbidden(request, refused)
        if self.header in request.META and request.user.is_authenticated:
            refused = self._follow_groups(request)
            if refused:
                return _forbidden(request, refused)
        return self.get_response(request)

    def _follow_groups(self, request: HttpRequest) -> str:
        """Groups changed since this session's last request: sign in again to apply them."""
        groups_value = _groups_value(request)
        if groups_value is None:
            return ""
        if getattr(request, "trusted_groups_synced", None) != groups_value and (
            request.session.get(SESSION_GROUPS) != groups_value
        ):
            try:
                sign_in_from_header(request.META[self.header], groups_value)
            except SignInRefused as refusal:
                return str(refusal)
        if request.session.get(SESSION_GROUPS) != groups_value:  # no session write per request
            request.session[SESSION_GROUPS] = groups_value
        return ""


class TrustedHeaderWebsocketMiddleware:
    """The same for websockets, in front of the session's user: a socket from a trusted proxy
    that names a person is that person; the header from anyone else closes the socket."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket" or not enabled():
            return await self.inner(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        username = headers.get(settings.TRUSTED_USER_HEADER.lower().encode("latin-1"))
        if username is None:
            return await self.inner(scope, receive, send)
        address = (scope.get("client") or (None,))[0]
        if not is_trusted_address(address):
            await database_sync_to_async(refuse_untrusted)(address, "websocket")
            return await WebsocketDenier()(scope, receive, send)
        groups = None
        if settings.TRUSTED_GROUPS_HEADER:
            raw = headers.get(settings.TRUSTED_GROUPS_HEADER.lower().encode("latin-1"), b"")
            groups = raw.decode("latin-1")
        try:
            user = await database_sync_to_async(_socket_user)(username.decode("latin-1"), groups)
        except SignInRefused:
            return await WebsocketDenier()(scope, receive, send)
        return await self.inner(dict(scope, user=user), receive, send)


def _socket_user(username: str, groups_value: str | None):
    """A socket usually follows a page request that signed the person in already: reuse that
    account when nothing changed (no second audit entry per page), else sign in again."""
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(
            kind=ExternalIdentity.Kind.HEADER,
            issuer=settings.TRUSTED_USER_HEADER,
            subject=username.strip(),
        )
        .first()
    )
    unchanged = groups_value is None or sorted(set(parse_group_list(groups_value))) == (
        identity.groups if identity else None
    )
    if identity is not None and identity.user.is_active and unchanged:
        return identity.user
    return sign_in_from_header(username, groups_value)

"""OpenID Connect sign-in with Authlib: authorization code flow with PKCE (S256), ``state`` and
``nonce``; the ID token's signature is checked against the provider's JWKS (fetched again when
a token names an unknown key, so key rotation works), and its ``iss``, ``aud``, ``exp``,
``nonce`` and ``at_hash`` by Authlib. People are matched by (issuer, ``sub``)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.django_client import DjangoOAuth2App, OAuth
from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from joserfc.errors import JoseError
from requests import RequestException

from chat.models import ExternalIdentity
from chat.signin.identity import (
    ExternalPerson,
    SignInRefused,
    deferred_message,
    refuse,
    sign_in,
)

log = logging.getLogger(__name__)

# The ID token and the issuer of this session's sign-in, for RP-initiated logout.
SESSION_ID_TOKEN = "oidc_id_token"
SESSION_NEXT = "oidc_next"

_clients: dict[tuple, DjangoOAuth2App] = {}
_clients_lock = threading.Lock()


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def client() -> DjangoOAuth2App:
    """One Authlib client per configuration: it caches the discovery document and the JWKS."""
    key = (
        settings.OIDC_ISSUER,
        settings.OIDC_CLIENT_ID,
        settings.OIDC_CLIENT_SECRET,
        settings.OIDC_SCOPES,
    )
    with _clients_lock:
        if key not in _clients:
            registry = OAuth()
            _clients[key] = registry.register(
                name="oidc",
                client_id=settings.OIDC_CLIENT_ID,
                client_secret=settings.OIDC_CLIENT_SECRET,
                server_metadata_url=settings.OIDC_ISSUER.rstrip("/")
                + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": settings.OIDC_SCOPES,
                    "code_challenge_method": "S256",
                    "timeout": 10,
                },
            )
        return _clients[key]


def start(request: HttpRequest, redirect_uri: str):
    """The redirect to the provider's login page (state, nonce and PKCE verifier kept in the
    session by Authlib). Raises ``SignInRefused`` when the provider cannot be reached."""
    try:
        return client().authorize_redirect(request, redirect_uri)
    except (RequestException, ValueError) as error:
        log.warning("OIDC discovery failed: %r", error)
        raise refuse(
            ExternalIdentity.Kind.OIDC, _("The sign-in provider could not be reached. Try again.")
        ) from error


@dataclass
class Result:
    user: object
    id_token: str


def _person(claims: dict) -> ExternalPerson:
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    return ExternalPerson(
        kind=ExternalIdentity.Kind.OIDC,
        issuer=claims["iss"],
        subject=str(claims["sub"]),
        username=claims.get("preferred_username") or "",
        email=claims.get("email") or "",
        first_name=claims.get("given_name") or "",
        last_name=claims.get("family_name") or "",
        groups=[str(group) for group in groups],
    )


def finish(request: HttpRequest) -> Result:
    """Check the provider's answer on the redirect URI and sign the person in. Raises
    ``SignInRefused`` (audited) for anything wrong: an error from the provider, a state that is
    not this browser's, a code the provider refuses (replayed, expired), a token whose signature,
    issuer, audience, expiry or nonce is wrong."""
    app = client()
    try:
        metadata = app.load_server_metadata()
        if metadata.get("issuer") != settings.OIDC_ISSUER:
            raise refuse(
                ExternalIdentity.Kind.OIDC,
                deferred_message(
                    _("The provider names itself %(issuer)s, not OIDC_ISSUER."),
                    issuer=repr(metadata.get("issuer")),
                ),
            )
        token = app.authorize_access_token(
            request,
            claims_options={
                "iss": {"essential": True, "values": [settings.OIDC_ISSUER]},
                # Authlib checks the audience only through "azp"; the spec wants it checked.
                "aud": {"essential": True, "values": [settings.OIDC_CLIENT_ID]},
            },
        )
    except SignInRefused:
        raise
    except OAuthError as error:  # provider error, wrong state, refused code
        raise refuse(ExternalIdentity.Kind.OIDC, _describe(error)) from error
    except JoseError as error:  # signature, iss, aud, exp, nonce
        raise refuse(
            ExternalIdentity.Kind.OIDC,
            deferred_message(_("The provider's ID token was rejected: %(error)s"), error=error),
        ) from error
    except (RequestException, ValueError, KeyError) as error:
        log.warning("OIDC provider unreachable or answered nonsense: %r", error)
        raise refuse(
            ExternalIdentity.Kind.OIDC, _("The sign-in provider could not be reached. Try again.")
        ) from error
    claims = token.get("userinfo")
    if not claims:
        raise refuse(ExternalIdentity.Kind.OIDC, _("The provider sent no ID token."))
    user = sign_in(
        _person(dict(claims)),
        admin_groups=settings.OIDC_ADMIN_GROUPS,
        allowed_groups=settings.OIDC_ALLOWED_GROUPS,
    )
    return Result(user=user, id_token=token["id_token"])


def _describe(error: OAuthError) -> str:
    if error.error == "mismatching_state":
        return _("This sign-in was not started in this browser (state mismatch). Start again.")
    if error.error == "invalid_grant":
        return _("The provider refused the sign-in code (already used or expired). Start again.")
    if error.error == "access_denied":
        return _("The provider did not let you in.")
    return deferred_message(
        _("The provider answered: %(error)s: %(description)s"),
        error=error.error,
        description=error.description or "",
    )


def logout_url(id_token: str, post_logout_redirect_uri: str) -> str | None:
    """The provider's end-session URL (RP-initiated logout), or None when it has none."""
    try:
        metadata = client().load_server_metadata()
    except (RequestException, ValueError) as error:
        log.warning("OIDC discovery failed at logout: %r", error)
        return None
    if not metadata.get("end_session_endpoint"):
        return None
    return client().create_logout_url(
        post_logout_redirect_uri=post_logout_redirect_uri,
        id_token_hint=id_token,
        client_id=settings.OIDC_CLIENT_ID,
    )["url"]

"""Error reports (the DEBUG page, error e-mails) never show a password written inside a URL.

Django already hides settings whose *name* looks secret (``…KEY``, ``…PASS…``, ``…TOKEN``) and
``DATABASES[…]["PASSWORD"]``; URL-valued settings (``DATABASE_URL``, ``REDIS_URL``, a cache
``LOCATION``, ``OPENAI_BASE_URL``, an ``…_URI`` of a sign-in provider) and request metadata
carry theirs inside the value, which is masked here wherever it appears.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

MASK = "********"

# scheme://userinfo@ — userinfo cannot contain "/", "@" or whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@", re.I)
# ?password=…, &api_key=…, ;token=… in a query string.
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;][^=&#;\s]*(?:pass|secret|token|key|signature|auth|credential)[^=&#;\s]*=)"
    r"[^&#;\s]*",
    re.I,
)


def _mask_userinfo(match: re.Match) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    # user:password → keep the user (useful when debugging); a lone value may be a token.
    return f"{match['scheme']}{user}:{MASK}@" if colon else f"{match['scheme']}{MASK}@"


def mask_url_credentials(text: str) -> str:
    """Every password, lone userinfo token and secret-looking query parameter in URLs within
    ``text`` replaced by a mask: ``redis://:pw@host/0`` → ``redis://:********@host/0``."""
    text = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_PARAMETER.sub(lambda match: match["name"] + MASK, text)


class CredentialsCleansingFilter(SafeExceptionReporterFilter):
    """Django's filter, plus credentials inside any string setting or request header."""

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_url_credentials(cleansed)
        return cleansed

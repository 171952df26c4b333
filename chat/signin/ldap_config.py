"""django-auth-ldap's settings (``AUTH_LDAP_*``) from Switchboard's ``LDAP_*`` variables.
Imported by ``project.settings`` only when ``LDAP_SERVER_URI`` is set (it needs python-ldap)."""

from __future__ import annotations

import ldap
from django_auth_ldap.config import (
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPSearch,
    NestedActiveDirectoryGroupType,
    PosixGroupType,
)

GROUP_TYPES = {
    "groupOfNames": (GroupOfNamesType, "(objectClass=groupOfNames)"),
    "groupOfUniqueNames": (GroupOfUniqueNamesType, "(objectClass=groupOfUniqueNames)"),
    "posixGroup": (PosixGroupType, "(objectClass=posixGroup)"),
    "activeDirectory": (NestedActiveDirectoryGroupType, "(objectClass=group)"),
}


def auth_ldap_settings(
    *,
    server_uri: str,
    bind_dn: str = "",
    bind_password: str = "",
    user_search_base: str,
    user_filter: str = "(uid=%(user)s)",
    group_search_base: str = "",
    group_type: str = "groupOfNames",
    start_tls: bool = False,
    timeout: int = 10,
) -> dict:
    """The ``AUTH_LDAP_*`` settings: users found by a search (bind as ``bind_dn``, or
    anonymously), then bound as themselves with their password; groups read at each login."""
    if group_type not in GROUP_TYPES:
        raise ValueError(f"LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}")
    config = {
        "AUTH_LDAP_SERVER_URI": server_uri,
        "AUTH_LDAP_BIND_DN": bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": bind_password,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_search_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        # Each login reads the groups afresh (no cache between logins).
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "AUTH_LDAP_CONNECTION_OPTIONS": {
            ldap.OPT_NETWORK_TIMEOUT: timeout,
            ldap.OPT_TIMEOUT: timeout,
            ldap.OPT_REFERRALS: 0,  # Active Directory's referrals need their own binds
        },
    }
    if group_search_base:
        group_class, group_filter = GROUP_TYPES[group_type]
        config["AUTH_LDAP_GROUP_SEARCH"] = LDAPSearch(
            group_search_base, ldap.SCOPE_SUBTREE, group_filter
        )
        config["AUTH_LDAP_GROUP_TYPE"] = group_class(name_attr="cn")
    return config

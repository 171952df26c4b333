"""LDAP / Active Directory sign-in on the normal login form (django-auth-ldap). The person is
found by ``LDAP_USER_FILTER`` and bound with their password; their groups are read at each
login and applied by ``identity.sign_in``. Someone removed or disabled in the directory is no
longer found, so cannot log in; their account's sessions are refused too once deactivated."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend
from django.core.exceptions import PermissionDenied
from django_auth_ldap.backend import LDAPBackend

from chat.models import ExternalIdentity
from chat.signin.identity import (
    ExternalPerson,
    SignInRefused,
    refuse,
    sign_in,
    username_taken,
)


class SwitchboardLDAPBackend(LDAPBackend, BaseBackend):
    """django-auth-ldap's backend (plus Django's async methods from ``BaseBackend``), matching
    accounts by their directory entry and applying groups through ``identity.sign_in``."""

    def _person(self, ldap_user) -> ExternalPerson:
        return ExternalPerson(
            kind=ExternalIdentity.Kind.LDAP,
            issuer=self.settings.SERVER_URI,
            subject=ldap_user.dn,
            username=ldap_user._username,
            groups=sorted(ldap_user.group_names) if self.settings.GROUP_TYPE else None,
        )

    def get_or_build_user(self, username, ldap_user):
        """By the directory entry's DN first; a same-named account that signs in another way
        is not taken over (refused and audited)."""
        identity = (
            ExternalIdentity.objects.select_related("user")
            .filter(
                kind=ExternalIdentity.Kind.LDAP,
                issuer=self.settings.SERVER_URI,
                subject=ldap_user.dn,
            )
            .first()
        )
        if identity is not None:
            return identity.user, False
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and (user.has_usable_password() or user.external_identities.exists()):
            refuse(self._person(ldap_user), username_taken(user.get_username()))
            raise PermissionDenied
        return user, built

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            self._audit_failure(ldap_user)
            return None
        try:
            return sign_in(
                self._person(ldap_user), admin_groups=settings.LDAP_ADMIN_GROUPS, user=user
            )
        except SignInRefused as refusal:
            raise PermissionDenied(str(refusal)) from refusal

    def _audit_failure(self, ldap_user) -> None:
        """A failed LDAP login of someone who signed in by LDAP before (wrong password, or
        removed or disabled in the directory) is audited; unknown names are not (they are
        usually local accounts, or typing)."""
        name = self.ldap_to_django_username(ldap_user._username)
        user = get_user_model().objects.filter(username__iexact=name).first()
        if (
            user is not None
            and user.external_identities.filter(
                kind=ExternalIdentity.Kind.LDAP, issuer=self.settings.SERVER_URI
            ).exists()
        ):
            refuse(
                ExternalIdentity.Kind.LDAP,
                f"LDAP refused {name}: wrong password, or removed or disabled in the directory",
                user,
            )

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

"""One external sign-in, whatever the method: find the account by the provider's stable id,
create it on first sight, refuse what must be refused, and bring its teams and role in step.

Accounts are matched by (kind, issuer, subject), never by e-mail or username alone: a person
whose e-mail or username already belongs to a local account is refused with a message saying
so, until staff link the accounts in the admin (an ``ExternalIdentity`` row on that user).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from chat.models import ExternalIdentity
from chat.services import audit
from chat.signin import groups as group_sync

log = logging.getLogger(__name__)

METHOD_NAMES = dict(ExternalIdentity.Kind.choices)


class SignInRefused(Exception):
    """The person may not sign in; the message is shown to them and audited."""


def username_taken(username: str) -> str:
    return deferred_message(
        _(
            "The username “%(username)s” already belongs to an account here that signs in "
            "another way. Ask an administrator to link your sign-in to it."
        ),
        username=username,
    )


@dataclass
class ExternalPerson:
    """What a provider says about someone who just proved who they are."""

    kind: str  # ExternalIdentity.Kind
    issuer: str
    subject: str
    username: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    # None: the method is not set up to tell groups (no groups header, no LDAP group search);
    # teams and role are then left alone rather than emptied.
    groups: list[str] | None = field(default_factory=list)


def english(text: object) -> str:
    """Audit entries and log lines are English, whatever the language of the page."""
    with translation.override("en"):
        return str(text)


def deferred_message(template: str, **values: object) -> str:
    """A marked ``template`` with its values, translated only when shown: the person reads it
    in their language, the audit log keeps it in English (``english``)."""
    return lazy(lambda: (str(template) % values).strip(), str)()


def refuse(person_or_kind, message: str, user=None) -> SignInRefused:
    """Audit a refusal (in English) and return the exception to raise (its message in the
    language of whoever reads it)."""
    kind = getattr(person_or_kind, "kind", person_or_kind)
    subject = getattr(person_or_kind, "subject", "")
    detail = english(message)
    detail = f"{detail} (subject {subject})" if subject else detail
    audit.record_sign_in(user, english(METHOD_NAMES.get(kind, kind)), "refused", detail)
    log.warning("sign-in refused (%s): %s", kind, detail)
    return SignInRefused(message)


def _free_username(wanted: str) -> str:
    User = get_user_model()
    base = re.sub(r"[^\w.@+-]", "", wanted)[:140] or "user"
    name, number = base, 1
    while User.objects.filter(username__iexact=name).exists():
        number += 1
        name = f"{base}-{number}"
    return name


def _email_owner(person: ExternalPerson):
    if not person.email:
        return None
    return get_user_model().objects.filter(email__iexact=person.email).first()


def _new_account(person: ExternalPerson):
    user = get_user_model()(
        username=_free_username(person.username or person.email.split("@")[0] or person.subject),
        email=person.email,
        first_name=person.first_name[:150],
        last_name=person.last_name[:150],
    )
    user.set_unusable_password()
    user.save()
    return user


def _check(person: ExternalPerson, allowed_groups: Sequence[str], user):
    """Every refusal, before anything is written (a refusal's audit entry must survive):
    the linked identity (or None) and the account to use (None: create one)."""
    if allowed_groups and not group_sync.in_any(person.groups or [], allowed_groups):
        raise refuse(person, _("Your organisation account is not in a group allowed here."))
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(kind=person.kind, issuer=person.issuer, subject=person.subject)
        .first()
    )
    if identity is not None:
        if user is not None and user.pk != identity.user_id:
            raise refuse(person, _("This sign-in is linked to another account."), identity.user)
        user = identity.user
    elif user is not None and user.pk is not None and not _may_adopt(user, person):
        raise refuse(person, username_taken(user.get_username()))
    elif user is None and (taken := _email_owner(person)) is not None:
        raise refuse(
            person,
            deferred_message(
                _(
                    "The e-mail address %(email)s already belongs to the account “%(username)s” "
                    "here. Ask an administrator to link your sign-in to it."
                ),
                email=person.email,
                username=taken.get_username(),
            ),
        )
    if user is not None and not user.is_active:
        raise refuse(person, _("This account is deactivated."), user)
    return identity, user


def sign_in(
    person: ExternalPerson,
    *,
    admin_groups: Sequence[str] = (),
    allowed_groups: Sequence[str] = (),
    user=None,
):
    """The account ``person`` signs in to, after checks, with teams and role updated and the
    sign-in audited. ``user``: an account the method already chose (LDAP, header), which must
    not belong to someone else. Raises ``SignInRefused``."""
    identity, user = _check(person, allowed_groups, user)
    with transaction.atomic():
        if user is None:
            user = _new_account(person)
        if identity is None:
            identity = ExternalIdentity.objects.create(
                user=user, kind=person.kind, issuer=person.issuer, subject=person.subject
            )
        identity.last_login_at = timezone.now()
        joined, left = [], []
        if person.groups is not None:
            identity.groups = sorted(set(person.groups))
            joined, left = group_sync.sync_teams(user, person.groups)
            group_sync.sync_staff(user, person.groups, list(admin_groups))
        identity.save(update_fields=["groups", "last_login_at"])
        detail = f"subject {person.subject}"
        if joined:
            detail += f"; joined {', '.join(joined)}"
        if left:
            detail += f"; left {', '.join(left)}"
        audit.record_sign_in(user, english(METHOD_NAMES[person.kind]), "signed in", detail)
    return user


def _may_adopt(user, person: ExternalPerson) -> bool:
    """An existing account the method found by username (LDAP, header) is theirs only if it
    came from the same method and issuer, or was just created by it (no other way in)."""
    if user.external_identities.filter(kind=person.kind, issuer=person.issuer).exists():
        return True
    return not user.has_usable_password() and not user.external_identities.exists()

"""Staff changes to many accounts at once (the admin's bulk actions), each one audited."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from chat.services import audit, session_binding


def deactivate(actor: AbstractBaseUser, users: QuerySet) -> int:
    """Stop the active ``users`` (never ``actor``) from logging in; their sockets close."""
    changed = list(users.exclude(pk=actor.pk).filter(is_active=True))
    for user in changed:
        audit.record(actor, user, "changed", "active", "True", "False")
    users.filter(pk__in=[u.pk for u in changed]).update(is_active=False)
    # A bulk update sends no post_save: close their open sockets here.
    session_binding.check_sockets_after_commit(u.pk for u in changed)
    return len(changed)


def reactivate(actor: AbstractBaseUser, users: QuerySet) -> int:
    changed = list(users.filter(is_active=False))
    for user in changed:
        audit.record(actor, user, "changed", "active", "False", "True")
    users.filter(pk__in=[u.pk for u in changed]).update(is_active=True)
    return len(changed)


def reset_passwords(actor: AbstractBaseUser, users: QuerySet) -> list[tuple[AbstractBaseUser, str]]:
    """A new random password per user, returned once (never stored in clear); their sessions
    end because their password changed."""
    issued = []
    for user in users.order_by("username"):
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
        audit.record(actor, user, "changed", "password", "", audit.SECRET)
        issued.append((user, password))
    return issued

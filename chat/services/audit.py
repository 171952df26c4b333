"""The audit log: who changed which field of which object, and when (also failed logins and
lockouts). Secrets are never stored: a key change is recorded as "set", "replaced" or
"removed", without any part of its value."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.utils import translation

from chat.models import AuditLogEntry

SECRET = "(secret, not recorded)"


def _actor_fields(actor) -> dict:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"actor": None, "actor_name": "system"}
    return {"actor": actor, "actor_name": actor.get_username()}


def _object_fields(obj: models.Model) -> dict:
    with translation.override("en"):  # a filter of the audit page: never the admin's language
        object_type = str(obj._meta.verbose_name)
    return {
        "object_type": object_type,
        "object_id": str(obj.pk or ""),
        "object_repr": str(obj)[:200],
    }


def record(actor, obj: models.Model, action: str, field: str = "", old="", new="") -> None:
    AuditLogEntry.objects.create(
        **_actor_fields(actor),
        **_object_fields(obj),
        action=action,
        field=field,
        old_value=str(old),
        new_value=str(new),
    )


def record_event(
    actor, *, object_type: str, object_repr: str, action: str, field: str = "", old="", new=""
) -> None:
    """Something that happened to no stored object (a failed login, a lockout)."""
    AuditLogEntry.objects.create(
        **_actor_fields(actor),
        object_type=object_type[:50],
        object_repr=object_repr[:200],
        action=action[:20],
        field=field[:100],
        old_value=str(old),
        new_value=str(new),
    )


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, list | tuple | set) and not isinstance(value, str):
        return ", ".join(_text(item) for item in value)
    return str(value)


def record_form(actor, obj: models.Model, form, *, created: bool, skip: Iterable[str] = ()) -> int:
    """An admin form was saved: "created" plus the fields given, or one entry per changed field
    with its old and new value. Fields in ``skip`` (secrets) are left out entirely."""
    skip = set(skip)
    base = _actor_fields(actor) | _object_fields(obj)
    entries = [AuditLogEntry(**base, action="created")] if created else []
    for name in form.changed_data:
        if name in skip or name not in form.cleaned_data:
            continue
        bound = form[name]
        with translation.override("en"):  # the log reads the same whatever the admin's language
            label = str(bound.label)
        entries.append(
            AuditLogEntry(
                **base,
                action="created" if created else "changed",
                field=label[:100],
                old_value="" if created else _text(bound.initial),
                new_value=_text(form.cleaned_data[name]),
            )
        )
    AuditLogEntry.objects.bulk_create(entries)
    return len(entries)


def record_formset_deletions(actor, formset) -> None:
    """Call before the formset is saved: deleted rows lose their primary key when saved."""
    if formset.can_delete:
        for form in formset.deleted_forms:
            if form.instance.pk is not None:
                record(actor, form.instance, "deleted")


def record_formset(actor, formset) -> None:
    """Call after the formset is saved: the inline rows that were added or changed."""
    deleted = {id(form) for form in formset.deleted_forms} if formset.can_delete else set()
    initial = formset.initial_form_count()
    for index, form in enumerate(formset.forms):
        if id(form) in deleted or not form.has_changed() or form.instance.pk is None:
            continue
        record_form(actor, form.instance, form, created=index >= initial)


def record_sign_in(user, method: str, outcome: str, detail: str = "") -> None:
    """An external sign-in ("signed in") or a refusal ("refused"), with the method (OpenID
    Connect, LDAP, proxy header) and what happened; ``user`` may be None (nobody matched)."""
    AuditLogEntry.objects.create(
        **_actor_fields(user if user is not None and user.pk else None),
        object_type="sign-in",
        object_id=str(user.pk) if user is not None and user.pk else "",
        object_repr=(user.get_username() if user is not None else "")[:200],
        action=outcome,
        field=method[:100],
        new_value=detail,
    )

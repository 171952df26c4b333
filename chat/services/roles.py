"""Roles: staff (full admin), auditors (read-only usage and audit log) and members.

An auditor is not staff: they never reach the Django admin, keys, users or settings. They are
the members of the "Auditors" group, whose permissions are the two read-only ones below, so
staff may also grant those permissions to any other group."""

from __future__ import annotations

from django.apps import apps as global_apps

AUDITORS = "Auditors"
# (app label, model, codename, name)
AUDITOR_PERMISSIONS = (
    ("chat", "userquota", "view_usage_dashboard", "Can view the usage dashboard and its CSV"),
    ("chat", "auditlogentry", "view_auditlogentry", "Can view audit log entry"),
)
USAGE_PERMISSION = "chat.view_usage_dashboard"
AUDIT_PERMISSION = "chat.view_auditlogentry"


def create_auditors_group(apps=global_apps):
    """The "Auditors" group with its permissions (idempotent; ``apps``: a migration's)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name=AUDITORS)
    for app_label, model, codename, name in AUDITOR_PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        group.permissions.add(permission)
    return group


def is_auditor(user) -> bool:
    # groups.all(): the user list prefetches them, so its Role column costs no query per row.
    return any(group.name == AUDITORS for group in user.groups.all())


def may_view_usage(user) -> bool:
    """Staff, auditors: the usage dashboard, its CSV and the per-team budgets view."""
    return user.is_active and (user.is_staff or user.has_perm(USAGE_PERMISSION))


def may_view_audit_log(user) -> bool:
    return user.is_active and (user.is_staff or user.has_perm(AUDIT_PERMISSION))


def set_auditor(user, auditor: bool) -> None:
    group = create_auditors_group()
    if auditor:
        user.groups.add(group)
    else:
        user.groups.remove(group)

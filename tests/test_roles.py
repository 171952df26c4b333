"""Roles by pages: members, auditors and staff on every staff page, admin changelist and admin
action. Auditors read the usage dashboard, its CSV, the team budgets and the audit log, and
nothing else: no keys, users or settings."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from chat.models import AuditLogEntry, Provider
from chat.services import roles

pytestmark = pytest.mark.django_db

AUDITOR_PAGES = {
    "/admin/usage/",
    "/admin/usage/export.csv",
    "/admin/usage/teams/",
    "/admin/audit-log/",
}


def staff_pages(provider: Provider) -> list[str]:
    """Every page for staff: ours, then each registered model's changelist and add form."""
    pages = [
        *sorted(AUDITOR_PAGES),
        "/admin/lockouts/",
        "/admin/",
        "/admin/password_change/",
        f"/admin/chat/provider/{provider.pk}/change/",
        f"/admin/chat/provider/{provider.pk}/test-connection/",
    ]
    for model in admin.site._registry:
        meta = model._meta
        pages.append(f"/admin/{meta.app_label}/{meta.model_name}/")
        pages.append(f"/admin/{meta.app_label}/{meta.model_name}/add/")
    return pages


@pytest.fixture
def auditor(make_user):
    user = make_user("audrey")
    roles.set_auditor(user, True)
    return user


def test_every_registered_model_is_in_the_matrix(provider):
    pages = staff_pages(provider)
    assert "/admin/auth/user/" in pages and "/admin/chat/auditlogentry/" in pages
    assert "/admin/chat/team/" in pages and "/admin/chat/sitesettings/" in pages


def test_a_member_reaches_no_staff_page(client, user, provider):
    client.force_login(user)
    for url in staff_pages(provider):
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/"), url


def test_an_auditor_reads_usage_and_the_audit_log_only(client, auditor, provider):
    AuditLogEntry.objects.create(actor_name="root", action="changed", object_type="provider")
    client.force_login(auditor)
    for url in staff_pages(provider):
        response = client.get(url)
        if url in AUDITOR_PAGES:
            assert response.status_code == 200, url
        else:  # keys, users, settings, lockouts: not theirs
            assert response.status_code in (302, 403), url
            if response.status_code == 302:
                assert response["Location"].startswith("/admin/login/"), url
    assert "root" in client.get("/admin/audit-log/").content.decode()
    nav = client.get("/admin/usage/").content.decode()
    assert "Audit log" in nav and ">Admin<" not in nav


def test_staff_open_every_staff_page(staff_client, provider):
    for url in staff_pages(provider):
        response = staff_client.get(url)
        # SiteSettings has a single row: its add form redirects once it exists.
        assert response.status_code in (200, 302, 403), url
        if url.endswith("/test-connection/"):  # tests, then back to the provider's page
            assert response["Location"] == f"/admin/chat/provider/{provider.pk}/change/"
        elif response.status_code != 200:
            assert url.endswith("/add/"), (url, response.status_code)


ACTIONS = [
    ("/admin/auth/user/", "deactivate"),
    ("/admin/auth/user/", "reset_passwords"),
    ("/admin/chat/provider/", "test_connections"),
    ("/admin/chat/provider/", "import_models"),
]


@pytest.mark.parametrize(("changelist", "action"), ACTIONS)
def test_admin_actions_are_refused_to_members_and_auditors(
    client, user, auditor, make_user, provider, changelist, action
):
    target = make_user("target")
    selected = target.pk if "user" in changelist else provider.pk
    for who in (user, auditor):
        client.force_login(who)
        response = client.post(changelist, {"action": action, "_selected_action": [selected]})
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    target.refresh_from_db()
    assert target.is_active and target.has_usable_password()
    assert not provider.model_settings.exists()


def test_admin_actions_work_for_staff(staff_client, make_user):
    target = make_user("target")
    action = {"action": "deactivate", "_selected_action": [target.pk]}
    staff_client.post("/admin/auth/user/", action)
    target.refresh_from_db()
    assert not target.is_active


def test_staff_make_an_auditor_in_the_user_form(staff_client, user):
    data = {
        "username": user.username,
        "email": user.email,
        "role": "auditor",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
        "quota-TOTAL_FORMS": "0",
        "quota-INITIAL_FORMS": "0",
        "quota-MIN_NUM_FORMS": "0",
        "quota-MAX_NUM_FORMS": "1",
    }
    response = staff_client.post(f"/admin/auth/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    user = get_user_model().objects.get(pk=user.pk)
    assert not user.is_staff and roles.is_auditor(user)
    assert user.has_perm(roles.USAGE_PERMISSION) and user.has_perm(roles.AUDIT_PERMISSION)
    assert not user.has_perm("chat.view_provider") and not user.has_perm("auth.view_user")
    assert "Auditor" in staff_client.get("/admin/auth/user/").content.decode()
    form = staff_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert '<option value="auditor" selected>' in form
    data["role"] = "member"
    staff_client.post(f"/admin/auth/user/{user.pk}/change/", data)
    assert not roles.is_auditor(get_user_model().objects.get(pk=user.pk))


def test_the_auditors_group_is_created_on_demand_with_its_permissions(db):
    Group.objects.filter(name=roles.AUDITORS).delete()
    group = roles.create_auditors_group()
    assert roles.create_auditors_group() == group  # idempotent
    assert sorted(group.permissions.values_list("codename", flat=True)) == [
        "view_auditlogentry",
        "view_usage_dashboard",
    ]

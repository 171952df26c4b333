"""Migrations on a populated database: migrate back, create rows through the historical models,
migrate forward, check nothing was lost and the new fields are right."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def migrate() -> Callable[[list[tuple[str, str]]], StateApps]:
    """``migrate([("chat", "0004_…")])`` moves the test database there and returns the
    historical apps at that point; the database is brought back to the latest state after."""

    def to(targets: list[tuple[str, str]]) -> StateApps:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return executor.loader.project_state(targets).apps

    yield to
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_0005_image_hosts_keeps_the_site_settings(migrate):
    old = migrate([("chat", "0004_teams_sharing_heartbeat")])
    old.get_model("chat", "SiteSettings").objects.create(
        pk=1,
        allow_signup=True,
        allowed_email_domains="example.com",
        default_tokens_per_day=1000,
        staff_exempt=True,
    )
    new = migrate([("chat", "0005_image_hosts")])
    row = new.get_model("chat", "SiteSettings").objects.get(pk=1)
    assert (row.allow_signup, row.allowed_email_domains, row.default_tokens_per_day) == (
        True,
        "example.com",
        1000,
    )
    assert row.staff_exempt is True
    assert row.image_hosts == ""  # no host allowed: remote images wait for a click


def test_0008_external_identity_keeps_teams_and_members(migrate):
    old = migrate([("chat", "0004_teams_sharing_heartbeat")])
    User = old.get_model("auth", "User")
    Team = old.get_model("chat", "Team")
    ann = User.objects.create(username="ann", email="ann@example.org", password="!")
    bob = User.objects.create(username="bob", password="!")
    team = Team.objects.create(name="Research")
    team.members.add(ann, bob)

    new = migrate([("chat", "0008_external_identity")])
    Team = new.get_model("chat", "Team")
    ExternalIdentity = new.get_model("chat", "ExternalIdentity")
    team = Team.objects.get(name="Research")
    assert sorted(team.members.values_list("username", flat=True)) == ["ann", "bob"]
    assert team.external_group == ""  # existing teams stay managed by hand
    assert ExternalIdentity.objects.count() == 0  # existing accounts are local
    identity = ExternalIdentity.objects.create(
        user_id=team.members.get(username="ann").pk, kind="oidc", issuer="https://idp", subject="1"
    )
    assert identity.groups == [] and identity.last_login_at is None


def test_0014_api_keys_keeps_usage_settings_and_model_settings(migrate):
    old = migrate([("chat", "0008_external_identity")])
    User = old.get_model("auth", "User")
    Provider = old.get_model("chat", "Provider")
    ann = User.objects.create(username="ann", password="!")
    provider = Provider.objects.create(name="Gateway", base_url="http://gw/v1")
    old.get_model("chat", "ModelSetting").objects.create(
        provider=provider, model="gpt-5.4", display_name="Big", default_params={"seed": 1}
    )
    old.get_model("chat", "UsageRecord").objects.create(
        user=ann, provider=provider, model="gpt-5.4", api="chat", total_tokens=42
    )
    old.get_model("chat", "SiteSettings").objects.create(pk=1, image_hosts="img.example")

    new = migrate([("chat", "0014_api_keys")])
    setting = new.get_model("chat", "ModelSetting").objects.get(model="gpt-5.4")
    assert (setting.display_name, setting.default_params) == ("Big", {"seed": 1})
    assert setting.fallback_models == []  # no fallbacks until staff set them
    record = new.get_model("chat", "UsageRecord").objects.get()
    assert (record.total_tokens, record.source, record.api_key_id) == (42, "chat", None)
    site = new.get_model("chat", "SiteSettings").objects.get(pk=1)
    assert site.image_hosts == "img.example" and site.api_enabled is True
    key = new.get_model("chat", "ApiKey").objects.create(
        user_id=ann.pk, name="k", prefix="sb-abc", key_hash="0" * 64
    )
    assert key.allowed_models == [] and key.revoked_at is None

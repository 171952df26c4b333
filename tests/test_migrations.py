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


def test_0012_prompts_share_links_keeps_presets_and_site_settings(migrate):
    old = migrate([("chat", "0008_external_identity")])
    User = old.get_model("auth", "User")
    ann = User.objects.create(username="ann", password="!")
    old.get_model("chat", "SiteSettings").objects.create(
        pk=1, allow_signup=True, image_hosts="a.example"
    )
    old.get_model("chat", "Preset").objects.create(
        owner=ann, name="Terse", model="demo-chat", params={"temperature": 0.2}
    )
    thread = old.get_model("chat", "Thread").objects.create(owner=ann, title="Old chat")
    old.get_model("chat", "Turn").objects.create(
        thread=thread, author=ann, user_text="hi", output_text="hello", status="completed"
    )
    new = migrate([("chat", "0012_prompts_share_links")])
    turn = new.get_model("chat", "Turn").objects.get()
    assert (turn.thread.title, turn.user_text, turn.output_text) == ("Old chat", "hi", "hello")
    assert turn.compare_group == ""  # an ordinary turn, not part of a comparison
    preset = new.get_model("chat", "Preset").objects.get(name="Terse")
    assert (preset.owner.username, preset.model, preset.params) == (
        "ann",
        "demo-chat",
        {"temperature": 0.2},
    )
    assert preset.start_prompt is None
    site = new.get_model("chat", "SiteSettings").objects.get(pk=1)
    assert (site.allow_signup, site.image_hosts) == (True, "a.example")
    assert site.anonymous_share_links is False  # links stay for logged-in people until staff say so
    prompt = new.get_model("chat", "Prompt").objects.create(owner_id=ann.pk, name="P", text="t")
    preset.start_prompt = prompt
    preset.save()

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


def test_0010_retention_announcements_keeps_usage_and_settings(migrate):
    old = migrate([("chat", "0008_external_identity")])
    User = old.get_model("auth", "User")
    ann = User.objects.create(username="ann", password="!")
    old.get_model("chat", "SiteSettings").objects.create(pk=1, default_tokens_per_day=500)
    UsageRecord = old.get_model("chat", "UsageRecord")
    for tokens in (10, 20, 30):
        UsageRecord.objects.create(
            user_id=ann.pk, provider_name="Demo", model="demo-chat", total_tokens=tokens
        )

    new = migrate([("chat", "0010_retention_announcements")])
    UsageRecord = new.get_model("chat", "UsageRecord")
    assert sorted(UsageRecord.objects.values_list("total_tokens", flat=True)) == [10, 20, 30]
    # Each existing record stands for one request, in detail.
    assert set(UsageRecord.objects.values_list("requests", "rolled_up")) == {(1, False)}
    site = new.get_model("chat", "SiteSettings").objects.get(pk=1)
    assert site.default_tokens_per_day == 500
    assert (site.chat_retention_days, site.usage_detail_days) == (None, None)  # keep all
    Announcement = new.get_model("chat", "Announcement")
    banner = Announcement.objects.create(message="Hello")
    banner.dismissed_by.add(ann.pk)
    assert banner.level == "info" and banner.dismissed_by.count() == 1
def test_0009_governance_keeps_quotas_and_turns_rate_limit_zero_into_no_limit(migrate):
    old = migrate([("chat", "0008_external_identity")])
    User = old.get_model("auth", "User")
    UserQuota = old.get_model("chat", "UserQuota")
    Team = old.get_model("chat", "Team")
    UsageRecord = old.get_model("chat", "UsageRecord")
    unlimited = User.objects.create(username="fast", password="!")
    limited = User.objects.create(username="slow", password="!")
    default = User.objects.create(username="plain", password="!")
    UserQuota.objects.create(user=unlimited, requests_per_minute=0, tokens_per_day=0)
    UserQuota.objects.create(user=limited, requests_per_minute=3, tokens_per_month=500)
    UserQuota.objects.create(user=default, cost_per_month="2.50")
    Team.objects.create(name="Research").members.add(limited)
    UsageRecord.objects.create(user=limited, total_tokens=42, model="demo-chat")

    new = migrate([("chat", "0009_governance")])
    UserQuota = new.get_model("chat", "UserQuota")
    quotas = {q.user.username: q for q in UserQuota.objects.select_related("user")}
    # 0 meant "no limit": now blank plus the explicit switch, so nothing changes for them.
    assert (quotas["fast"].requests_per_minute, quotas["fast"].unlimited_rate) == (None, True)
    assert quotas["fast"].tokens_per_day == 0  # a token quota of 0 stays zero tokens
    assert (quotas["slow"].requests_per_minute, quotas["slow"].unlimited_rate) == (3, False)
    assert quotas["slow"].tokens_per_month == 500
    assert (quotas["plain"].requests_per_minute, quotas["plain"].unlimited_rate) == (None, False)
    assert str(quotas["plain"].cost_per_month) == "2.50"
    assert all(q.billing_team_id is None for q in quotas.values())  # the first team
    team = new.get_model("chat", "Team").objects.get(name="Research")
    assert team.cost_budget_per_month is None and team.token_budget_per_month is None
    assert list(team.members.values_list("username", flat=True)) == ["slow"]
    record = new.get_model("chat", "UsageRecord").objects.get()
    assert (record.total_tokens, record.team_id) == (42, None)  # history is not re-billed
    auditors = new.get_model("auth", "Group").objects.get(name="Auditors")
    assert sorted(auditors.permissions.values_list("codename", flat=True)) == [
        "view_auditlogentry",
        "view_usage_dashboard",
    ]

    # And back: the switch becomes 0 again.
    old = migrate([("chat", "0008_external_identity")])
    fast = old.get_model("chat", "UserQuota").objects.get(user__username="fast")
    assert fast.requests_per_minute == 0
def test_0011_organise_titles_feedback_keeps_chats_and_usage(migrate):
    old = migrate([("chat", "0008_external_identity")])
    User = old.get_model("auth", "User")
    Provider = old.get_model("chat", "Provider")
    Thread = old.get_model("chat", "Thread")
    Turn = old.get_model("chat", "Turn")
    UsageRecord = old.get_model("chat", "UsageRecord")
    ann = User.objects.create(username="ann", password="!")
    gateway = Provider.objects.create(name="Gateway", base_url="http://gw/v1")
    thread = Thread.objects.create(owner=ann, title="Renamed long ago", provider=gateway)
    turn = Turn.objects.create(thread=thread, author=ann, user_text="hi", output_text="hello")
    UsageRecord.objects.create(user=ann, thread=thread, turn=turn, model="m", total_tokens=7)
    new = migrate([("chat", "0011_organise_titles_feedback")])
    thread = new.get_model("chat", "Thread").objects.get(pk=thread.pk)
    assert (thread.title, thread.owner_id, thread.provider_id) == (
        "Renamed long ago",
        ann.pk,
        gateway.pk,
    )
    assert thread.title_source == "message"  # has turns already: never titled by a model
    assert (thread.pinned_at, thread.archived_at, thread.folder_id) == (None, None, None)
    assert new.get_model("chat", "Turn").objects.get(pk=turn.pk).output_text == "hello"
    record = new.get_model("chat", "UsageRecord").objects.get()
    assert (record.kind, record.total_tokens, record.turn_id) == ("turn", 7, turn.pk)
    assert new.get_model("chat", "Provider").objects.get(pk=gateway.pk).title_model == ""
    Folder = new.get_model("chat", "Folder")
    Feedback = new.get_model("chat", "Feedback")
    folder = Folder.objects.create(owner_id=ann.pk, name="Work")
    Feedback.objects.create(turn_id=turn.pk, user_id=ann.pk, rating="up", model="m")
    assert Feedback.objects.count() == 1 and folder.threads.count() == 0
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
def test_0013_mcp_servers_keeps_tools_threads_and_presets(migrate):
    old = migrate([("chat", "0010_retention_announcements")])
    User = old.get_model("auth", "User")
    ToolDefinition = old.get_model("chat", "ToolDefinition")
    Thread = old.get_model("chat", "Thread")
    Preset = old.get_model("chat", "Preset")
    ann = User.objects.create(username="ann", password="!")
    weather = ToolDefinition.objects.create(
        owner=ann, name="get_weather", description="Weather", parameters={"type": "object"}
    )
    calculator = ToolDefinition.objects.create(
        owner=ann, name="calculator", parameters={"type": "object"}, builtin="calculator"
    )
    thread = Thread.objects.create(owner=ann, title="Plans")
    thread.tools.set([weather, calculator])
    preset = Preset.objects.create(owner=ann, name="Daily")
    preset.tools.set([weather])

    new = migrate([("chat", "0013_mcp_servers")])
    tools = new.get_model("chat", "ToolDefinition").objects.order_by("name")
    assert [(t.name, t.builtin, t.mcp_tool_id) for t in tools] == [
        ("calculator", "calculator", None),
        ("get_weather", "", None),
    ]
    thread = new.get_model("chat", "Thread").objects.get(title="Plans")
    assert sorted(thread.tools.values_list("name", flat=True)) == ["calculator", "get_weather"]
    preset = new.get_model("chat", "Preset").objects.get(name="Daily")
    assert list(preset.tools.values_list("name", flat=True)) == ["get_weather"]
    server = new.get_model("chat", "McpServer").objects.create(name="Wiki", url="https://w/mcp")
    assert (server.transport, server.requires_approval, server.enabled) == (
        "streamable_http",
        False,
        True,
    )
    assert (server.connect_timeout, server.call_timeout, server.headers_encrypted) == (10, 60, "")




def test_0014_api_keys_keeps_usage_settings_and_model_settings(migrate):
    old = migrate([("chat", "0013_mcp_servers")])
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


def test_0015_attachments_keeps_turns_usage_and_quotas(migrate):
    old = migrate([("chat", "0014_api_keys")])
    User = old.get_model("auth", "User")
    ann = User.objects.create(username="ann", password="!")
    thread = old.get_model("chat", "Thread").objects.create(owner=ann, title="Logs")
    first = old.get_model("chat", "Turn").objects.create(
        thread=thread, author=ann, user_text="hi", output_text="hello", input_tokens=5
    )
    old.get_model("chat", "Turn").objects.create(
        thread=thread, parent=first, author=ann, user_text="again", status="completed"
    )
    old.get_model("chat", "UsageRecord").objects.create(user=ann, model="m", total_tokens=9)
    old.get_model("chat", "UserQuota").objects.create(user=ann, tokens_per_day=100)

    new = migrate([("chat", "0015_attachments")])
    turns = list(new.get_model("chat", "Turn").objects.order_by("pk"))
    assert [(t.user_text, t.output_text, t.input_tokens) for t in turns] == [
        ("hi", "hello", 5),
        ("again", "", 0),
    ]
    assert turns[1].parent_id == turns[0].pk and turns[1].status == "completed"
    assert [(t.image_tokens, t.audio_tokens, t.choice_index) for t in turns] == [(0, 0, 0)] * 2
    record = new.get_model("chat", "UsageRecord").objects.get()
    assert (record.total_tokens, record.image_tokens, record.audio_tokens) == (9, 0, 0)
    quota = new.get_model("chat", "UserQuota").objects.get()
    assert (quota.tokens_per_day, quota.upload_bytes_per_day) == (100, None)
    assert not new.get_model("chat", "Attachment").objects.exists()

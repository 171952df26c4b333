"""Personal API keys: the user's page, the management command, staff switches, validation."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from chat.api import validation
from chat.api.auth import authenticate
from chat.api.errors import ApiError
from chat.models import ApiAccess, ApiKey, AuditLogEntry, SiteSettings

pytestmark = pytest.mark.django_db


def test_a_new_key_is_shown_once_and_stored_as_its_hash(client, user):
    client.force_login(user)
    created = client.post(
        "/account/api-keys/", {"name": "notebook", "expires_days": "30", "models": "demo-chat"}
    )
    assert created.status_code == 200
    plaintext = created.context["new_key"]
    assert plaintext.startswith("sb-") and plaintext in created.content.decode()
    assert created["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(user=user)
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(list(ApiKey.objects.values_list()))
    assert key.prefix == plaintext[:10] and key.allowed_models == ["demo-chat"]
    assert key.expires_at is not None
    listed = client.get("/account/api-keys/").content.decode()
    assert key.prefix in listed and plaintext not in listed
    assert authenticate(f"Bearer {plaintext}", "1.2.3.4").user_id == user.pk


def test_bad_expiry_is_refused_and_keeps_what_was_typed(client, user):
    client.force_login(user)
    response = client.post("/account/api-keys/", {"name": "ci", "expires_days": "soon"})
    assert response.status_code == 400
    assert "number of days" in response.content.decode()
    assert 'value="ci"' in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoking_works_at_once_and_only_for_the_owner(client, user, other_user):
    from chat.api.keys import create_key

    key, plaintext = create_key(user, "mine")
    client.force_login(other_user)
    assert client.post(f"/account/api-keys/{key.pk}/revoke/").status_code == 404
    assert authenticate(f"Bearer {plaintext}", "ip").key_id == key.pk
    client.force_login(user)
    assert client.post(f"/account/api-keys/{key.pk}/revoke/").status_code == 200
    with pytest.raises(ApiError) as refused:
        authenticate(f"Bearer {plaintext}", "ip")
    assert refused.value.status == 401 and "revoked" in refused.value.message
    assert AuditLogEntry.objects.filter(object_type="API key", action="revoked").exists()


def test_staff_revoke_anyones_key_in_the_admin(staff_client, user):
    from chat.api.keys import create_key

    key, _ = create_key(user, "theirs")
    response = staff_client.post(
        "/admin/chat/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_the_api_can_be_turned_off_globally_and_per_user(client, user):
    from chat.api.keys import create_key

    _, plaintext = create_key(user, "k")
    headers = {"Authorization": f"Bearer {plaintext}"}
    site = SiteSettings.load()
    site.api_enabled = False
    site.save()
    response = client.get("/api/v1/models", headers=headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "api_disabled"
    site.api_enabled = True
    site.save()
    ApiAccess.objects.create(user=user, enabled=False)
    assert client.get("/api/v1/models", headers=headers).status_code == 403


def test_create_api_key_command(user):
    out = io.StringIO()
    call_command("create_api_key", user.username, "--name", "ci", "--expires-days", "7", stdout=out)
    plaintext = out.getvalue().strip()
    key = ApiKey.objects.get(key_hash=hashlib.sha256(plaintext.encode()).hexdigest())
    assert (key.name, key.user_id) == ("ci", user.pk) and key.expires_at is not None
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "nobody")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("create_api_key", user.username, "--expires-days", "0")


@pytest.mark.parametrize(
    ("api", "body", "param", "words"),
    [
        ("chat", {"temperature": 2.5}, "temperature", "between 0 and 2"),
        ("chat", {"temperature": "hot"}, "temperature", "a number"),
        ("chat", {"n": 9}, "n", "between 1 and 8"),
        ("chat", {"max_tokens": 0}, "max_tokens", "at least 1"),
        ("chat", {"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ("chat", {"logit_bias": {"x": 1}}, "logit_bias", "token IDs"),
        ("responses", {"reasoning": {"effort": "max"}}, "reasoning.effort", "one of"),
        ("responses", {"top_k": 0}, "top_k", "at least 1"),
        ("responses", {"store": "yes"}, "store", "a boolean"),
    ],
)
def test_parameters_are_checked_with_the_chat_specs(api, body, param, words):
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}], "input": "x"}
    with pytest.raises(ApiError) as invalid:
        validation.check_parameters(base | body, api)
    assert (invalid.value.status, invalid.value.param) == (400, param)
    assert words in invalid.value.message


def test_valid_parameters_pass():
    body = {
        "model": "m",
        "input": "x",
        "temperature": 0.5,
        "reasoning": {"effort": "low"},
        "tool_choice": {"type": "function", "name": "f"},
        "metadata": {"a": "b"},
        "text": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    validation.check_parameters(body, "responses")  # no error


def test_api_calls_count_in_the_rate_limit_of_chats(user, provider):
    from chat.models import UsageRecord, UserQuota
    from chat.services import quotas
    from chat.services.conversation import TurnRejected

    UserQuota.objects.create(user=user, requests_per_minute=2)
    quotas.check(user, provider, "demo-chat")  # nothing sent yet
    for _ in range(2):
        UsageRecord.objects.create(user=user, model="demo-chat", source="api")
    with pytest.raises(TurnRejected, match="2 a minute"):
        quotas.check(user, provider, "demo-chat")


def test_cors_only_for_the_configured_origins(client, user, settings):
    from chat.api.keys import create_key

    _, plaintext = create_key(user, "browser tool")
    headers = {"Authorization": f"Bearer {plaintext}", "Origin": "https://tool.example"}
    assert "Access-Control-Allow-Origin" not in client.get("/api/v1/models", headers=headers)
    settings.API_CORS_ORIGINS = ["https://tool.example"]
    preflight = client.options(
        "/api/v1/chat/completions",
        headers={"Origin": "https://tool.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "https://tool.example"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    other = client.options("/api/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.django_db(transaction=True)
def test_team_model_access_applies_to_the_api(client, user, provider):
    from chat.api.keys import create_key
    from chat.models import ModelSetting, Team

    setting = ModelSetting.objects.create(provider=provider, model="gpt-5.4")
    setting.allowed_teams.add(Team.objects.create(name="Research"))  # user is not a member
    _, plaintext = create_key(user, "k")
    headers = {"Authorization": f"Bearer {plaintext}"}
    listed = [m["id"] for m in client.get("/api/v1/models", headers=headers).json()["data"]]
    assert "gpt-5.4" not in listed and "gpt-5.4-mini" in listed
    refused = client.post(
        "/api/v1/responses",
        {"model": "gpt-5.4", "input": "hi"},
        content_type="application/json",
        headers=headers,
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "model"


@pytest.mark.django_db(transaction=True)
def test_api_calls_count_against_the_team_budget(client, user, provider):
    from chat.api.keys import create_key
    from chat.models import Team, TeamSpend, UsageRecord

    team = Team.objects.create(name="Research", token_budget_per_month=1_000_000)
    team.members.add(user)
    _, plaintext = create_key(user, "k")
    answer = client.post(
        "/api/v1/chat/completions",
        {"model": "demo-chat", "messages": [{"role": "user", "content": "hello"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {plaintext}"},
    )
    assert answer.status_code == 200
    used = answer.json()["usage"]["total_tokens"]
    record = UsageRecord.objects.get(source="api")
    assert (record.team_id, record.total_tokens) == (team.pk, used)
    assert TeamSpend.objects.get(team=team).tokens == used

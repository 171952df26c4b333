"""Admin details of running an organisation: default models, "Test connection" before a
provider is saved, and team budgets in the team form."""

import pytest

from chat.models import ModelSetting, Provider, SiteSettings, Team

pytestmark = pytest.mark.django_db


def selected_model(html: str) -> str:
    return html.split(" selected>")[0].rsplit('value="', 1)[1].split('"')[0]


def test_a_new_member_starts_on_the_default_model(client, user, make_user, provider):
    client.force_login(user)
    assert selected_model(client.get("/").content.decode()) == f"{provider.pk}:demo-chat"
    site_default = ModelSetting.objects.create(provider=provider, model="gpt-5.4")
    SiteSettings.objects.update_or_create(pk=1, defaults={"default_model": site_default})
    assert selected_model(client.get("/").content.decode()) == f"{provider.pk}:gpt-5.4"
    # The team's default comes first.
    team_default = ModelSetting.objects.create(provider=provider, model="gpt-5.4-mini")
    Team.objects.create(name="Research", default_model=team_default).members.add(user)
    assert selected_model(client.get("/").content.decode()) == f"{provider.pk}:gpt-5.4-mini"
    # A default the user may not use is skipped.
    team_default.allowed_users.add(make_user("someone"))
    assert selected_model(client.get("/").content.decode()) == f"{provider.pk}:gpt-5.4"


def test_the_last_model_used_still_wins_over_the_default(client, user, provider):
    site_default = ModelSetting.objects.create(provider=provider, model="gpt-5.4")
    SiteSettings.objects.update_or_create(pk=1, defaults={"default_model": site_default})
    client.force_login(user)
    session = client.session
    session["last_model"] = f"{provider.pk}:demo-reasoner"
    session.save()
    assert selected_model(client.get("/").content.decode()) == f"{provider.pk}:demo-reasoner"


def test_test_connection_before_saving(staff_client, demo_gateway_url, demo_api_key):
    form = staff_client.get("/admin/chat/provider/add/").content.decode()
    # The script under its hashed name (STORAGES: manifest storage).
    assert 'id="test-unsaved-provider"' in form and "admin_provider_test." in form
    url = "/admin/chat/provider/test-unsaved/"
    answer = staff_client.post(
        url, {"name": "New", "base_url": demo_gateway_url, "api_key": demo_api_key}
    ).json()
    assert answer["ok"] and "demo-chat" in answer["message"]
    wrong = staff_client.post(
        url, {"base_url": demo_gateway_url, "api_key": "sk-wrong-key-123456"}
    ).json()
    assert not wrong["ok"] and "sk-wrong-key-123456" not in wrong["message"]
    missing = staff_client.post(url, {"base_url": "", "api_key": "x"}).json()
    assert missing == {"ok": False, "message": "Enter the base URL first (https://…/v1)."}
    assert not Provider.objects.exists()  # nothing was stored, key included


def test_test_connection_before_saving_is_for_staff_only(client, user, demo_gateway_url):
    client.force_login(user)
    response = client.post(
        "/admin/chat/provider/test-unsaved/", {"base_url": demo_gateway_url, "api_key": "k"}
    )
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_set_a_team_budget_and_default_model(staff_client, provider):
    setting = ModelSetting.objects.create(provider=provider, model="gpt-5.4")
    response = staff_client.post(
        "/admin/chat/team/add/",
        {
            "name": "Research",
            "external_group": "",
            "cost_budget_per_month": "250.00",
            "token_budget_per_month": "",
            "default_model": setting.pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    team = Team.objects.get(name="Research")
    assert str(team.cost_budget_per_month) == "250.00" and team.token_budget_per_month is None
    assert team.default_model == setting

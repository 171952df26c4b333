"""Model access per team: the picker shows only what a user may use, and every entry point
(new chat page, the thread's model pick, each socket action, the reusable check) refuses the rest
in words."""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse

from chat.models import Access, ModelSetting, Team, Thread, ThreadShare, Turn
from chat.services import refusals
from chat.services.model_access import ModelNotAllowed, may_use_model, require_model
from chat.services.turns import launch
from tests.ws import ORIGIN, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = "You do not have access to the model “gpt-5.4”"


@pytest.fixture
def research(db, user):
    team = Team.objects.create(name="Research")
    team.members.add(user)
    return team


@pytest.fixture
def gpt_for_research(provider, research):
    """gpt-5.4 is for the Research team only."""
    setting = ModelSetting.objects.create(provider=provider, model="gpt-5.4")
    setting.allowed_teams.add(research)
    return setting


def test_everyone_may_use_a_model_nobody_restricted(user, other_user, provider):
    assert may_use_model(user, provider, "gpt-5.4")
    assert may_use_model(other_user, provider.pk, "gpt-5.4")


def test_a_model_for_a_team_and_a_named_user(user, other_user, make_user, gpt_for_research):
    provider = gpt_for_research.provider
    assert may_use_model(user, provider, "gpt-5.4")  # in the team
    assert not may_use_model(other_user, provider, "gpt-5.4")
    assert may_use_model(other_user, provider, "demo-chat")  # other models stay open
    with pytest.raises(ModelNotAllowed, match=REFUSED):
        require_model(other_user, provider, "gpt-5.4")
    gpt_for_research.allowed_users.add(other_user)
    assert may_use_model(other_user, provider, "gpt-5.4")
    assert not may_use_model(make_user("carol"), provider, "gpt-5.4")


def test_a_provider_for_a_team_closes_all_its_models(user, other_user, provider, research):
    provider.allowed_teams.add(research)
    assert may_use_model(user, provider, "demo-chat")
    assert not may_use_model(other_user, provider, "demo-chat")
    # A model rule cannot open what the provider's rule closes.
    ModelSetting.objects.create(provider=provider, model="demo-chat").allowed_users.add(other_user)
    assert not may_use_model(other_user, provider, "demo-chat")


def test_the_picker_shows_only_allowed_models(client, user, other_user, gpt_for_research):
    provider = gpt_for_research.provider
    client.force_login(other_user)
    html = client.get("/").content.decode()
    assert f'value="{provider.pk}:demo-chat"' in html
    assert f'value="{provider.pk}:gpt-5.4"' not in html
    client.force_login(user)
    assert f'value="{provider.pk}:gpt-5.4"' in client.get("/").content.decode()


def test_the_new_chat_page_refuses_a_forbidden_model(client, other_user, gpt_for_research):
    client.force_login(other_user)
    response = client.post(
        "/threads/new/", {"model": f"{gpt_for_research.provider_id}:gpt-5.4", "message": "hi"}
    )
    assert response.status_code == 200 and REFUSED in response.content.decode()
    assert not Thread.objects.exists() and not Turn.objects.exists()


def test_picking_a_forbidden_model_for_a_thread_is_refused(
    client, other_user, make_thread, gpt_for_research
):
    thread = make_thread(other_user)
    client.force_login(other_user)
    url = reverse("chat:set-model", args=[thread.pk])
    response = client.post(url, {"model": f"{gpt_for_research.provider_id}:gpt-5.4"})
    assert REFUSED in response.content.decode()
    thread.refresh_from_db()
    assert thread.model == "demo-chat"


def test_a_turn_on_a_forbidden_model_is_refused_before_upstream(
    other_user, make_thread, gpt_for_research, demo_requests
):
    thread = make_thread(other_user, model="gpt-5.4")  # picked before the rule existed
    with pytest.raises(refusals.TurnRejected, match=REFUSED):
        async_to_sync(launch.start_turn)(other_user, thread.pk, "hello")
    assert not Turn.objects.exists() and not demo_requests()


async def test_every_socket_action_is_refused_on_a_forbidden_model(
    other_user, make_thread, provider, research, cookie_of
):
    thread = await sync_to_async(make_thread)(other_user, model="gpt-5.4")
    ws = socket(thread.pk, ORIGIN, await cookie_of(other_user))
    assert (await ws.connect())[0]
    await ws.send_to(json.dumps({"action": "send", "message": "First #chunks=2"}))
    await receive_until(ws, r'data-status="completed"')
    first = await Turn.objects.aget(thread=thread)
    # Staff now restrict the model to a team the user is not in.
    setting = await ModelSetting.objects.acreate(provider=provider, model="gpt-5.4")
    await sync_to_async(setting.allowed_teams.add)(research)
    for action in (
        {"action": "send", "message": "Second"},
        {"action": "regenerate", "turn_id": first.pk},
        {"action": "retry", "turn_id": first.pk},
        {"action": "edit", "turn_id": first.pk, "message": "First, edited"},
    ):
        await ws.send_to(json.dumps(action))
        reply = await receive_until(ws, r'id="composer-error"')
        assert REFUSED in reply[-1], action
    assert await Turn.objects.filter(thread=thread).acount() == 1
    await ws.disconnect()


def test_a_collaborator_without_access_is_told_instead_of_sending(
    client, user, other_user, make_thread, gpt_for_research
):
    thread = make_thread(user, model="gpt-5.4")
    ThreadShare.objects.create(thread=thread, user=other_user, access=Access.COLLABORATE)
    client.force_login(other_user)
    html = client.get(thread.get_absolute_url()).content.decode()
    assert 'class="read-only-note model-refused"' in html and REFUSED in html
    client.force_login(user)  # the owner, in the team, sees no such note
    assert "model-refused" not in client.get(thread.get_absolute_url()).content.decode()


def test_a_preset_on_a_forbidden_model_is_refused_too(client, other_user, gpt_for_research):
    from chat.models import Preset

    provider = gpt_for_research.provider
    preset = Preset.objects.create(owner=other_user, name="Old", provider=provider, model="gpt-5.4")
    client.force_login(other_user)
    response = client.post(
        "/threads/new/",
        {"model": f"{provider.pk}:demo-chat", "preset": preset.pk, "message": "hi"},
    )
    assert REFUSED in response.content.decode()
    assert not Thread.objects.exists()

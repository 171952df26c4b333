"""Thread settings (API, parameters, tools), presets, the tool library and export."""

import json

import pytest

from chat.models import Preset, Thread, ToolDefinition, Turn
from chat.services import parameters
from chat.services.turns import launch, registry

pytestmark = pytest.mark.django_db(transaction=True)

HX = {"HX-Request": "true"}


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


def test_panel_shows_only_the_parameters_of_the_chosen_api(logged_in_client, thread):
    responses = logged_in_client.get(f"/t/{thread.pk}/settings/?api=responses").content.decode()
    chat = logged_in_client.get(f"/t/{thread.pk}/settings/?api=chat").content.decode()
    assert 'name="truncation"' in responses and 'name="truncation"' not in chat
    assert 'name="presence_penalty"' in chat and 'name="presence_penalty"' not in responses
    assert 'name="logit_bias"' in chat and 'name="top_k"' in responses
    assert "provider-specific" in responses


def test_out_of_range_values_are_refused_next_to_the_field_and_nothing_is_saved(
    logged_in_client, thread
):
    html = logged_in_client.post(
        f"/t/{thread.pk}/settings/",
        {"api": "chat", "temperature": "3", "top_p": "0.5", "logit_bias": "{not json"},
        headers=HX,
    ).content.decode()
    assert 'id="error-temperature"' in html and "between 0 and 2" in html
    assert 'id="error-logit_bias"' in html
    assert 'value="3"' in html  # what was typed comes back
    thread.refresh_from_db()
    assert thread.params == {} and thread.api == ""


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_set_parameters_reach_the_gateway_and_unset_ones_do_not(
    api, thread, user, async_client, demo_requests, settings
):
    await async_client.aforce_login(user)
    form = {
        "api": api,
        "temperature": "0.3",
        "seed": "7",
        "stop": "END",
        "instructions": "Be brief.",
    }
    if api == "chat":
        form |= {"presence_penalty": "0.5", "max_output_tokens": "500"}
    else:
        form |= {"truncation": "auto", "max_output_tokens": "500", "metadata": "team=core"}
    response = await async_client.post(f"/t/{thread.pk}/settings/", form, headers=HX)
    assert "Settings saved." in response.content.decode()
    turn = await launch.start_turn(user, thread.pk, "hello")
    await registry.wait_for(turn.pk)
    body = demo_requests()[-1]
    assert body["temperature"] == 0.3 and body["seed"] == 7 and body["stop"] == ["END"]
    assert "top_p" not in body and "frequency_penalty" not in body and "n" not in body
    assert body["user"] == parameters.user_identifier(user.pk, settings.SECRET_KEY)
    assert user.username not in json.dumps(body)
    if api == "chat":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["presence_penalty"] == 0.5 and body["max_completion_tokens"] == 500
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert body["instructions"] == "Be brief." and body["truncation"] == "auto"
        assert body["max_output_tokens"] == 500 and body["metadata"] == {"team": "core"}
    assert (await Turn.objects.aget(pk=turn.pk)).status == Turn.Status.COMPLETED


def test_preset_saved_and_a_new_chat_started_from_it(logged_in_client, thread, user, provider):
    logged_in_client.post(
        f"/t/{thread.pk}/settings/", {"api": "chat", "temperature": "1.5"}, headers=HX
    )
    html = logged_in_client.post(
        f"/t/{thread.pk}/preset/", {"preset_name": "Creative"}, headers=HX
    ).content.decode()
    assert "Saved as preset" in html
    preset = Preset.objects.get(owner=user, name="Creative")
    assert "Creative" in logged_in_client.get("/").content.decode()
    logged_in_client.post(
        "/threads/new/",
        {"model": f"{provider.pk}:demo-chat", "message": "hi #chunks=3", "preset": preset.pk},
    )
    created = Thread.objects.filter(owner=user).exclude(pk=thread.pk).get()
    assert created.api == "chat" and created.params == {"temperature": 1.5}


def test_tool_library_validates_the_schema_inline(logged_in_client, user):
    html = logged_in_client.post(
        "/tools/new/",
        {"name": "get weather", "description": "", "parameters": '{"type": "object",'},
        headers=HX,
    ).content.decode()
    assert 'id="tool-name-error"' in html and 'id="tool-parameters-error"' in html
    assert "not valid JSON" in html
    assert not ToolDefinition.objects.exists()
    schema = {"type": "array"}
    html = logged_in_client.post(
        "/tools/new/",
        {"name": "w", "description": "", "parameters": json.dumps(schema)},
        headers=HX,
    ).content.decode()
    assert "object" in html and not ToolDefinition.objects.exists()
    good = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    html = logged_in_client.post(
        "/tools/new/",
        {"name": "get_weather", "description": "Weather", "parameters": json.dumps(good)},
        headers=HX,
    ).content.decode()
    assert "Saved “get_weather”" in html
    assert ToolDefinition.objects.get(owner=user).parameters == good


def test_another_users_tools_are_not_found(logged_in_client, other_user):
    theirs = ToolDefinition.objects.create(
        owner=other_user, name="secret", parameters={"type": "object"}
    )
    assert logged_in_client.get(f"/tools/{theirs.pk}/").status_code == 404
    assert logged_in_client.post(f"/tools/{theirs.pk}/delete/").status_code == 404
    assert ToolDefinition.objects.filter(pk=theirs.pk).exists()


def test_builtin_tools_can_be_added_and_offered(logged_in_client, user, thread):
    logged_in_client.post("/tools/builtin/calculator/", headers=HX)
    calculator = ToolDefinition.objects.get(owner=user, builtin="calculator")
    logged_in_client.post(
        f"/t/{thread.pk}/settings/",
        {"api": "responses", "tools": [calculator.pk], "tool_choice": "function:calculator"},
        headers=HX,
    )
    thread.refresh_from_db()
    assert list(thread.tools.all()) == [calculator]
    assert thread.params["tool_choice"] == "function:calculator"


async def test_export_markdown_and_json(thread, user, async_client):
    await async_client.aforce_login(user)
    turn = await launch.start_turn(user, thread.pk, "Export me #chunks=20")
    await registry.wait_for(turn.pk)
    md = await async_client.get(f"/t/{thread.pk}/export.md")
    assert md["Content-Disposition"].startswith("attachment;")
    assert "## You\n\nExport me #chunks=20" in md.content.decode()
    data = json.loads((await async_client.get(f"/t/{thread.pk}/export.json")).content)
    assert data["turns"][0]["user"] == "Export me #chunks=20"
    assert data["turns"][0]["response_id"] and data["turns"][0]["usage"]["total_tokens"] > 0

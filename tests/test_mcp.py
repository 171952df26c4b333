"""Tools from MCP servers, against real MCP server processes (tests/mcp_server) and the demo
gateway over HTTP: the loop for both APIs, result shapes, failures as results, stop, approval,
team access, header tokens (encrypted at rest), the list-changed notification, audit."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chat.models import McpCall, McpServer, McpTool, Team, ToolDefinition, Turn
from chat.services.mcp import client as mcp_client
from chat.services.mcp import registry
from chat.services.turns import launch
from chat.services.turns import registry as turn_registry
from tests.mcp_fixtures import TOKEN, offer, start_server, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["responses", "chat"])
def api(request):
    return request.param


@pytest.fixture
def thread(make_thread, user, api):
    thread = make_thread(user)
    thread.api = api
    thread.save()
    return thread


@pytest.fixture
def server(make_mcp_server, mcp_url):
    return make_mcp_server(mcp_url, "main", headers={"X-Test-Token": TOKEN})


@pytest.fixture(autouse=True)
async def _close_connections():
    yield
    await mcp_client.close_all()


async def run(user, thread, text) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await turn_registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


def audits() -> list[McpCall]:
    return list(McpCall.objects.order_by("created_at"))


# -- the loop for both APIs ------------------------------------------------------------------------


async def test_an_mcp_tool_runs_on_its_server_and_the_model_gets_the_text(
    user, thread, server, demo_requests
):
    await sync_to_async(offer)(user, thread, server, "echo")
    turn = await run(user, thread, "say it #call=echo")
    assert turn.status == Turn.Status.COMPLETED, turn.error
    [call] = turn.tool_calls
    assert call["status"] == "done" and call["result"] == "echo: demo"
    assert call["mcp_server"] == "main" and call["duration_ms"] >= 0
    assert "echo: demo" in turn.output_text  # the model was given the server's answer
    second = demo_requests()[-1]
    if thread.api == "responses":
        assert second["input"][-1]["output"] == "echo: demo"
    else:
        assert second["messages"][-1]["content"] == "echo: demo"
    [record] = await sync_to_async(audits)()
    assert (record.server_name, record.tool_name, record.status) == ("main", "echo", "done")
    assert record.user_id == user.pk and record.turn_id == turn.pk
    assert record.arguments is None  # not kept unless MCP_AUDIT_ARGUMENTS


async def test_structured_content_goes_to_the_model_as_json(user, thread, server):
    await sync_to_async(offer)(user, thread, server, "weather")
    turn = await run(user, thread, "weather #call=weather")
    [call] = turn.tool_calls
    assert call["status"] == "done"
    assert json.loads(call["result"]) == {"city": "demo", "temperature_c": 21, "sky": "clear"}


async def test_an_image_is_image_input_on_responses_and_a_note_on_chat(
    user, thread, server, demo_requests
):
    await sync_to_async(offer)(user, thread, server, "red_square")
    turn = await run(user, thread, "draw #call=red_square")
    [call] = turn.tool_calls
    assert turn.status == Turn.Status.COMPLETED and call["status"] == "done"
    second = demo_requests()[-1]
    if thread.api == "responses":
        output = second["input"][-1]["output"]
        assert output[0]["type"] == "input_text" and "attached" in output[0]["text"]
        assert output[1]["type"] == "input_image"
        assert output[1]["image_url"].startswith("data:image/png;base64,iVBORw0KGgo")
    else:
        content = second["messages"][-1]["content"]
        assert "cannot pass images" in content and "image/png" in content


async def test_arguments_audited_only_when_the_setting_says(user, thread, server, settings):
    settings.MCP_AUDIT_ARGUMENTS = True
    await sync_to_async(offer)(user, thread, server, "echo")
    await run(user, thread, "say it #call=echo")
    [record] = await sync_to_async(audits)()
    assert record.arguments == {"text": "demo"}


# -- failures are results, the turn goes on ------------------------------------------------------


async def test_a_failing_tool_is_an_error_result(user, thread, server):
    await sync_to_async(offer)(user, thread, server, "broken")
    turn = await run(user, thread, "break #call=broken")
    assert turn.status == Turn.Status.COMPLETED
    [call] = turn.tool_calls
    assert call["status"] == "error" and "the tool reported a failure" in call["result"]
    assert call["result"] in turn.output_text


async def test_a_slow_call_times_out_and_the_turn_goes_on(user, thread, make_mcp_server, mcp_url):
    server = await sync_to_async(make_mcp_server)(mcp_url, "slowpoke", call_timeout=0.5)
    await sync_to_async(offer)(user, thread, server, "slow")  # the gateway asks for 2.5 s
    turn = await run(user, thread, "wait #call=slow")
    assert turn.status == Turn.Status.COMPLETED
    [call] = turn.tool_calls
    assert call["status"] == "error" and "did not answer within 0.5 seconds" in call["result"]
    [record] = await sync_to_async(audits)()
    assert record.status == "timeout"
    # The pooled connection still serves the next call.
    await sync_to_async(offer)(user, thread, server, "echo")
    again = await run(user, thread, "again #call=echo")
    assert again.tool_calls[-1]["result"] == "echo: demo"


async def test_arguments_are_checked_before_the_server_is_called(user, thread, server):
    await sync_to_async(offer)(user, thread, server, "echo")
    turn = await run(user, thread, "bad #call=echo #wrongargs")
    [call] = turn.tool_calls
    assert turn.status == Turn.Status.COMPLETED and call["status"] == "error"
    assert "text" in call["result"]  # names the field that was wrong
    assert await McpCall.objects.acount() == 0  # never sent


async def test_a_server_that_is_down_is_an_error_result(user, thread, make_mcp_server):
    process, url = start_server("--name", "short-lived")
    server = await sync_to_async(make_mcp_server)(url, "flaky", connect_timeout=2)
    await sync_to_async(offer)(user, thread, server, "echo")
    stop(process)
    turn = await run(user, thread, "say #call=echo")
    assert turn.status == Turn.Status.COMPLETED
    [call] = turn.tool_calls
    assert call["status"] == "error" and "'flaky' is unavailable" in call["result"]
    assert [r.status for r in await sync_to_async(audits)()] == ["unavailable"]


async def test_the_pooled_connection_reopens_after_the_server_restarts(
    user, thread, make_mcp_server
):
    process, url = start_server("--name", "restarting")
    port = int(url.split(":")[2].split("/")[0])
    server = await sync_to_async(make_mcp_server)(url, "restarting", connect_timeout=2)
    await sync_to_async(offer)(user, thread, server, "echo")
    try:
        first = await run(user, thread, "one #call=echo")
        assert first.tool_calls[-1]["result"] == "echo: demo"  # the session is now pooled
        stop(process)
        down = await run(user, thread, "two #call=echo")
        assert down.tool_calls[-1]["status"] == "error"
        process, _ = start_server("--name", "restarting", port=port)
        back = await run(user, thread, "three #call=echo")
        assert back.tool_calls[-1]["result"] == "echo: demo"
    finally:
        stop(process)


async def test_a_tool_the_server_dropped_is_an_error_result(user, thread, server):
    await sync_to_async(offer)(user, thread, server, "echo")
    await McpTool.objects.filter(server=server, name="echo").aupdate(available=False)
    turn = await run(user, thread, "say #call=echo")
    [call] = turn.tool_calls
    assert call["status"] == "error" and "no longer offers the tool 'echo'" in call["result"]


async def test_a_long_result_is_truncated_with_a_note(user, thread, server, settings):
    settings.MCP_RESULT_MAX_CHARS = 1000
    await sync_to_async(offer)(user, thread, server, "long_text")
    turn = await run(user, thread, "long #call=long_text")
    [call] = turn.tool_calls
    assert call["result"].startswith("x" * 1000)
    assert "Truncated: the tool returned 50000 characters; only the first 1000" in call["result"]


# -- many calls, stop ----------------------------------------------------------------------------


async def test_calls_to_two_servers_run_at_the_same_time(
    user,
    thread,
    make_mcp_server,
    mcp_url,
    second_mcp_url,
):
    first = await sync_to_async(make_mcp_server)(mcp_url, "first")
    second = await sync_to_async(make_mcp_server)(second_mcp_url, "second")
    [slow_a] = await sync_to_async(offer)(user, thread, first, "slow")
    [slow_b] = await sync_to_async(offer)(user, thread, second, "slow")
    assert (slow_a.name, slow_b.name) == ("slow", "second_slow")  # no clash in the library
    turn = await run(user, thread, "both #call=slow #call=second_slow")
    assert turn.status == Turn.Status.COMPLETED
    assert [c["status"] for c in turn.tool_calls] == ["done", "done"]
    records = await sync_to_async(audits)()
    assert {r.server_name for r in records} == {"first", "second"}
    # Each record is written when its call ends: the calls overlapped in time.
    (a, b) = records
    b_started = b.created_at - timedelta(milliseconds=b.duration_ms)
    assert b_started < a.created_at


async def test_a_slow_server_does_not_hold_up_other_turns(
    user,
    make_thread,
    make_mcp_server,
    mcp_url,
):
    server = await sync_to_async(make_mcp_server)(mcp_url, "main")
    waiting = await sync_to_async(make_thread)(user, title="waits")
    quick = await sync_to_async(make_thread)(user, title="quick")
    await sync_to_async(offer)(user, waiting, server, "slow")
    slow_turn = await launch.start_turn(user, waiting.pk, "wait #call=slow")
    other = await run(user, quick, "hello")
    assert other.status == Turn.Status.COMPLETED
    # The slow call (2.5 s) is still running when the other turn is done.
    assert (await Turn.objects.aget(pk=slow_turn.pk)).status == Turn.Status.IN_PROGRESS
    await turn_registry.wait_for(slow_turn.pk)


async def _until_running(turn_id: int) -> None:
    for _ in range(200):
        runner = turn_registry._running.get(turn_id)
        if runner and any(c.get("status") == "running" for c in runner.state.tool_calls):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the MCP call never started")


async def test_stop_cancels_a_running_call(user, thread, server):
    await sync_to_async(offer)(user, thread, server, "slow", "echo")
    turn = await launch.start_turn(user, thread.pk, "wait #call=slow")
    await _until_running(turn.pk)
    assert await turn_registry.stop_turn(turn.pk)
    await asyncio.wait_for(turn_registry.wait_for(turn.pk), 2)  # well before the 2.5 s call ends
    stopped = await Turn.objects.aget(pk=turn.pk)
    assert stopped.status == Turn.Status.CANCELLED
    [call] = stopped.tool_calls
    assert call["status"] == "error" and call["result"] == "Stopped before the tool answered."
    [record] = await sync_to_async(audits)()
    assert record.status == "cancelled"
    again = await run(user, thread, "again #call=echo")  # the connection survived the stop
    assert again.tool_calls[-1]["result"] == "echo: demo"


# -- approval --------------------------------------------------------------------------------------


@pytest.fixture
def careful(make_mcp_server, mcp_url):
    return make_mcp_server(mcp_url, "careful", requires_approval=True)


async def test_an_approved_call_runs_after_the_user_approves(user, thread, careful):
    await sync_to_async(offer)(user, thread, careful, "echo")
    turn = await run(user, thread, "say #call=echo")
    assert turn.status == Turn.Status.AWAITING_TOOL
    [call] = turn.tool_calls
    assert call["status"] == "awaiting" and call["approval"] == "asked"
    assert await McpCall.objects.acount() == 0  # nothing ran before the approval
    await launch.answer_tool_call(user, turn.pk, call["call_id"], "")
    await turn_registry.wait_for(turn.pk)
    done = await Turn.objects.aget(pk=turn.pk)
    assert done.status == Turn.Status.COMPLETED
    assert done.tool_calls[0]["status"] == "done" and "echo: demo" in done.output_text
    assert await McpCall.objects.filter(status="done").acount() == 1


async def test_a_rejected_call_never_reaches_the_server(user, thread, careful):
    await sync_to_async(offer)(user, thread, careful, "echo")
    turn = await run(user, thread, "say #call=echo")
    await launch.answer_tool_call(user, turn.pk, turn.tool_calls[0]["call_id"], None)
    await turn_registry.wait_for(turn.pk)
    done = await Turn.objects.aget(pk=turn.pk)
    assert done.status == Turn.Status.COMPLETED
    assert done.tool_calls[0]["status"] == "rejected" and "did not approve" in done.output_text
    assert await McpCall.objects.acount() == 0


# -- teams, headers, secrets -----------------------------------------------------------------------


def test_another_teams_server_is_neither_listed_nor_callable_in_the_library(
    client,
    user,
    make_user,
    make_mcp_server,
    mcp_url,
):
    other = make_user("outsider")
    team = Team.objects.create(name="Ops")
    team.members.add(other)
    server = make_mcp_server(mcp_url, "ops-only", teams=[team])
    client.force_login(user)
    page = client.get("/tools/").content.decode()
    assert "ops-only" not in page
    assert registry.library_groups(user) == []
    with pytest.raises(registry.LibraryRefused):
        registry.add_to_library(user, server.tools.get(name="echo").pk)
    assert client.post(f"/tools/mcp/{server.pk}/refresh/").status_code == 404
    client.force_login(other)
    assert "ops-only" in client.get("/tools/").content.decode()


async def test_another_teams_server_is_refused_at_call_time(
    user,
    thread,
    make_user,
    make_mcp_server,
    mcp_url,
):
    server = await sync_to_async(make_mcp_server)(mcp_url, "ops-only")
    await sync_to_async(offer)(user, thread, server, "echo")
    # The user's team access ends after the tool was added (or the row was forged).
    team = await Team.objects.acreate(name="Ops")
    await sync_to_async(server.teams.set)([team])
    turn = await run(user, thread, "say #call=echo")
    [call] = turn.tool_calls
    assert call["status"] == "error" and "may not use the MCP server 'ops-only'" in call["result"]
    assert [r.status for r in await sync_to_async(audits)()] == ["refused"]


async def test_the_header_token_is_sent(user, thread, server, make_mcp_server, mcp_url):
    await sync_to_async(offer)(user, thread, server, "secret")
    turn = await run(user, thread, "#call=secret")
    assert turn.tool_calls[0]["result"] == "token accepted"
    bare = await sync_to_async(make_mcp_server)(mcp_url, "no-token")
    await sync_to_async(offer)(user, thread, bare, "secret")  # as no-token_secret
    turn = await run(user, thread, "#call=no-token_secret")
    assert turn.tool_calls[-1]["status"] == "error"


def test_headers_are_encrypted_at_rest_and_never_shown(admin_client, server):
    with connection.cursor() as cursor:
        cursor.execute("SELECT headers_encrypted FROM chat_mcpserver WHERE id = %s", [server.pk])
        [stored] = cursor.fetchone()
    assert TOKEN not in stored and stored
    assert McpServer.objects.get(pk=server.pk).headers == {"X-Test-Token": TOKEN}
    page = admin_client.get(f"/admin/chat/mcpserver/{server.pk}/change/").content.decode()
    assert TOKEN not in page and "X-Test-Token: ••••" in page


def test_the_admin_form_keeps_headers_when_left_empty_and_refuses_bad_ones(admin_client, server):
    url = f"/admin/chat/mcpserver/{server.pk}/change/"
    form = {
        "name": "main",
        "url": server.url,
        "transport": "streamable_http",
        "connect_timeout": "5",
        "call_timeout": "30",
        "enabled": "on",
        "headers": "",
    }
    assert admin_client.post(url, form).status_code == 302
    assert McpServer.objects.get(pk=server.pk).headers == {"X-Test-Token": TOKEN}
    refused = admin_client.post(url, form | {"headers": "no colon here"})
    assert refused.status_code == 200 and "write “Name: value”" in refused.content.decode()
    assert McpServer.objects.get(pk=server.pk).headers == {"X-Test-Token": TOKEN}


def test_test_connection_lists_the_tools(admin_client, server):
    response = admin_client.get(f"/admin/chat/mcpserver/{server.pk}/test-connection/", follow=True)
    text = response.content.decode()
    assert "main: connected;" in text.lower() and "red_square" in text


def test_test_connection_says_why_it_failed(admin_client, db):
    server = McpServer.objects.create(
        name="nowhere", url="http://127.0.0.1:9/mcp", connect_timeout=2
    )
    text = admin_client.get(
        f"/admin/chat/mcpserver/{server.pk}/test-connection/", follow=True
    ).content.decode()
    assert "nowhere: the server cannot be reached" in text.lower()


# -- the library ---------------------------------------------------------------------------------


def test_the_library_lists_tools_by_server_and_adds_them(client, user, server):
    client.force_login(user)
    page = client.get("/tools/").content.decode()
    assert "Tools from MCP servers" in page and "Echo the text back." in page
    echo = server.tools.get(name="echo")
    response = client.post(f"/tools/mcp/tool/{echo.pk}/add/")
    assert "Added “echo”" in response.content.decode()
    tool = ToolDefinition.objects.get(owner=user, name="echo")
    assert tool.mcp_tool == echo and tool.parameters == echo.input_schema
    # Its schema is the server's: the library refuses edits.
    assert client.post(f"/tools/{tool.pk}/save/", {"name": "x"}).status_code == 400


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_the_list_changed_notification_refreshes_the_tools(
    user, thread, make_mcp_server, transport
):
    # A server of its own: the call adds a tool to it. SSE servers speak the older protocol,
    # which announces changes unasked; Streamable HTTP ones here speak 2026-07-28 (listen).
    process, url = start_server("--transport", transport.replace("_", "-"))
    try:
        server = await sync_to_async(make_mcp_server)(url, "growing", transport=transport)
        await sync_to_async(offer)(user, thread, server, "add_tool")
        turn = await run(user, thread, "grow #call=add_tool")  # adds a tool named "demo"
        assert turn.tool_calls[0]["status"] == "done", turn.tool_calls
        for _ in range(100):
            if await McpTool.objects.filter(server=server, name="demo").aexists():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the new tool was not listed")
    finally:
        stop(process)


def test_an_mcp_tool_is_chosen_per_chat_and_kept_in_presets(client, user, thread, server):
    [echo] = offer(user, thread, server, "echo")
    thread.tools.clear()
    client.force_login(user)
    headers = {"HX-Request": "true"}
    saved = client.post(
        f"/t/{thread.pk}/settings/", {"api": thread.api, "tools": [echo.pk]}, headers=headers
    )
    assert "Settings saved." in saved.content.decode()
    assert list(thread.tools.all()) == [echo]
    client.post(f"/t/{thread.pk}/preset/", {"preset_name": "With echo"}, headers=headers)
    assert list(user.presets.get(name="With echo").tools.all()) == [echo]

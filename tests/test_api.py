"""The OpenAI-compatible API (/api/v1) driven by the official ``openai`` SDK against a live
Switchboard whose upstream is the mounted demo gateway (directives drive its answers/faults)."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import openai
import pytest

from tests.api_site import CLIENT_IP_HEADER, KEY_FAILURES_PER_IP, ApiSite


def client(site: ApiSite, key: str, **headers: str) -> openai.OpenAI:
    # No SDK retries: each test sees exactly what one request got.
    return openai.OpenAI(
        base_url=site.base_url,
        api_key=site.keys.get(key, key),
        max_retries=0,
        timeout=30,
        default_headers=headers or None,
    )


def test_models_lists_what_the_key_may_use(api_site):
    models = [m.id for m in client(api_site, "ann").models.list()]
    # demo-reasoner is turned off by staff; the demo gateway offers the other four.
    assert models == ["demo-chat", "demo-text", "gpt-5.4", "gpt-5.4-mini"]
    assert [m.id for m in client(api_site, "ann_mini").models.list()] == ["gpt-5.4-mini"]


def test_chat_completions_whole_and_streamed(api_site):
    api = client(api_site, "ann")
    whole = api.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "Hello API"}]
    )
    assert "Echo: Hello API" in whole.choices[0].message.content
    assert whole.usage.total_tokens > 0

    chunks = list(
        api.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "Hello stream #chunks=5"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("## Echo: Hello stream")
    # Switchboard asked the gateway for usage; the client did not, so it never sees that chunk.
    assert all(c.choices for c in chunks)

    asked = list(
        api.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "usage please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.total_tokens > 0

    records = api_site.wait_for_record("ann", 3)
    assert [(r["source"], r["status"], r["model"]) for r in records[:3]] == [
        ("api", "completed", "demo-chat")
    ] * 3
    assert all(r["total"] > 0 and not r["estimated"] for r in records[:3])


def test_responses_whole_streamed_and_previous_response_id(api_site):
    api = client(api_site, "bob")
    first = api.responses.create(model="demo-chat", input="Remember this")
    assert "Echo: Remember this" in first.output_text
    follow = api.responses.create(
        model="demo-chat", input="And now?", previous_response_id=first.id
    )
    assert "turn 2" in follow.output_text

    events = list(api.responses.create(model="demo-chat", input="Stream it #chunks=4", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    records = api_site.wait_for_record("bob", 3)
    assert {r["user"] for r in records} == {
        api_site.query("select id from auth_user where username = 'bob'")[0][0]
    }


def test_a_tool_call_round_trip(api_site):
    api = client(api_site, "ann")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a word up.",
                "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
            },
        }
    ]
    messages = [{"role": "user", "content": "Find it #call=lookup"}]
    asked = api.chat.completions.create(model="demo-chat", messages=messages, tools=tools)
    call = asked.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {
        "word": "demo"
    }
    messages += [
        asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "a small bird"},
    ]
    answer = api.chat.completions.create(model="demo-chat", messages=messages, tools=tools)
    assert "The tool lookup returned: a small bird." in answer.choices[0].message.content


def test_errors_map_to_the_sdk_exceptions(api_site):
    with pytest.raises(openai.AuthenticationError) as bad_key:
        client(api_site, "sb-not-a-key", **{CLIENT_IP_HEADER: "10.0.0.1"}).models.list()
    assert bad_key.value.code == "invalid_api_key"

    api = client(api_site, "ann_mini")
    with pytest.raises(openai.PermissionDeniedError) as denied:
        api.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "x"}])
    assert denied.value.param == "model"

    with pytest.raises(openai.BadRequestError) as invalid:
        api.chat.completions.create(
            model="gpt-5.4-mini", messages=[{"role": "user", "content": "x"}], temperature=3
        )
    assert invalid.value.param == "temperature"
    assert "between 0 and 2" in invalid.value.message

    with pytest.raises(openai.BadRequestError) as wrong_type:
        api.responses.create(model="gpt-5.4-mini", input="x", max_output_tokens="many")
    assert wrong_type.value.param == "max_output_tokens"

    with pytest.raises(openai.NotFoundError):  # turned off by staff
        client(api_site, "ann").responses.create(model="demo-reasoner", input="x")

    with pytest.raises(openai.PermissionDeniedError) as off:  # staff turned erin's API off
        client(api_site, "erin").models.list()
    assert off.value.code == "api_disabled"

    # An upstream failure with no fallback: 502, never the gateway's status as if it were ours.
    with pytest.raises(openai.InternalServerError) as upstream:
        api.chat.completions.create(
            model="gpt-5.4-mini", messages=[{"role": "user", "content": "#fault=500"}]
        )
    assert upstream.value.status_code == 502


def test_rate_limit_and_quotas_apply_to_api_calls(api_site):
    carol = client(api_site, "carol")  # 2 requests a minute
    for _ in range(2):
        carol.responses.create(model="demo-chat", input="quick")
    with pytest.raises(openai.RateLimitError) as limited:
        carol.responses.create(model="demo-chat", input="too quick")
    assert "2 a minute" in limited.value.message
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 61

    dave = client(api_site, "dave")  # 1 token a day: the first call spends it
    dave.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
    api_site.wait_for_record("dave", 1)
    with pytest.raises(openai.RateLimitError) as quota:
        dave.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "x"}])
    assert "daily quota" in quota.value.message
    assert int(quota.value.response.headers["retry-after"]) > 0


def test_fallback_before_the_first_byte(api_site):
    api = client(api_site, "bob")
    answer = api.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "Fall back #fault=503@gpt-5.4"}]
    )
    assert answer.model == "gpt-5.4-mini"
    assert "Echo: Fall back" in answer.choices[0].message.content

    began = time.monotonic()
    events = list(
        api.responses.create(model="gpt-5.4", input="Busy #fault=429@gpt-5.4", stream=True)
    )
    assert time.monotonic() - began >= 0.9  # the gateway's Retry-After: 1 was honoured
    assert events[-1].response.model == "gpt-5.4-mini"
    records = api_site.wait_for_record("bob", 5)
    assert [r["model"] for r in records[-2:]] == ["gpt-5.4-mini", "gpt-5.4-mini"]


def test_no_silent_retry_once_the_stream_started(api_site):
    api = client(api_site, "ann")
    before = len(api_site.wait_for_record("ann", 0))
    received = []
    with pytest.raises(openai.APIError) as cut:
        for chunk in api.chat.completions.create(
            model="gpt-5.4",
            messages=[{"role": "user", "content": "Cut me #fault=cut@gpt-5.4"}],
            stream=True,
        ):
            received.append(chunk)
    assert received and all(c.model == "gpt-5.4" for c in received)
    assert "closed the stream" in cut.value.message
    records = api_site.wait_for_record("ann", before + 1)
    assert len(records) == before + 1  # one upstream request: gpt-5.4-mini was not tried
    assert (records[-1]["model"], records[-1]["status"]) == ("gpt-5.4", "failed")


def test_an_abandoned_stream_is_cancelled_and_recorded(api_site):
    api = client(api_site, "ann")
    before = len(api_site.wait_for_record("ann", 0))
    stream = api.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "Long one #chunks=300 #delay=50"}],
        stream=True,
    )
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.close()
    began = time.monotonic()
    records = api_site.wait_for_record("ann", before + 1)
    assert time.monotonic() - began < 8  # recorded when the client left, not after 15 s
    last = records[-1]
    assert last["status"] == "stopped"
    assert last["estimated"] and 0 < last["output"] < 300


def test_revoking_a_key_stops_its_running_stream(api_site):
    key = "bob"
    api = client(api_site, key)
    stream = api.responses.create(
        model="demo-chat", input="Slow #chunks=200 #delay=50", stream=True
    )
    deltas = 0
    with pytest.raises(openai.APIError) as stopped:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas += 1
                if deltas == 2:
                    api_site.revoke(key)
    assert deltas < 100
    assert "revoked" in stopped.value.message
    with pytest.raises(openai.AuthenticationError):
        api.models.list()


def test_brute_force_of_keys_is_throttled_per_ip(api_site):
    header = {CLIENT_IP_HEADER: "10.9.9.9"}
    for attempt in range(KEY_FAILURES_PER_IP):
        with pytest.raises(openai.AuthenticationError):
            client(api_site, f"sb-guess-{attempt}", **header).models.list()
    # Now even a valid key from that address waits; another address is not affected.
    with pytest.raises(openai.RateLimitError) as throttled:
        client(api_site, "ann", **header).models.list()
    assert int(throttled.value.response.headers["retry-after"]) > 0
    assert client(api_site, "ann", **{CLIENT_IP_HEADER: "10.9.9.10"}).models.list().data


def test_keys_are_stored_hashed_and_expire(api_site):
    stored = api_site.query("select key_hash, prefix from chat_apikey")
    plaintexts = set(api_site.keys.values())
    assert {h for h, _ in stored} == {hashlib.sha256(k.encode()).hexdigest() for k in plaintexts}
    dump = "\n".join(str(row) for row in api_site.query("select * from chat_apikey"))
    assert not any(key in dump for key in plaintexts)

    api_site.execute(
        "update chat_apikey set expires_at = '2020-01-01 00:00:00' where id = ?",
        api_site.key_id("dave"),
    )
    with pytest.raises(openai.AuthenticationError) as expired:
        client(api_site, "dave").models.list()
    assert "expired" in expired.value.message


def test_curl_style_request_and_cors(api_site):
    # No CORS origins configured: a browser's preflight gets no allow headers.
    preflight = httpx.options(
        api_site.base_url + "/chat/completions",
        headers={"Origin": "https://tool.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    # No session, no CSRF token: a plain Bearer request works (and a cookie alone does not).
    response = httpx.post(
        api_site.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {api_site.keys['ann']}"},
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "curl"}]},
    )
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    anonymous = httpx.get(api_site.base_url + "/models", follow_redirects=False)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"


def test_images_and_spoken_answers_pass_through_with_their_tokens_recorded(api_site):
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (1, 2, 3)).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    api = client(api_site, "ann")
    before = len(api_site.records("ann"))
    answer = api.chat.completions.create(
        model="demo-chat",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
    )
    message = answer.choices[0].message
    assert message.audio.transcript.startswith("image: png 4×3 sha256:")  # noqa: RUF001
    assert base64.b64decode(message.audio.data)[:4] == b"RIFF"
    record = api_site.wait_for_record("ann", before + 1)[before]
    assert record["image"] == 85 and record["audio"] > 0

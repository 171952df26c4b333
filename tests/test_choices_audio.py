"""Chat Completions ``n > 1`` and spoken answers, from the settings to the stored turns: every
choice kept as a sibling turn (1/n switcher, the chosen one continues the thread), and an audio
answer stored as an attachment with a player next to its transcript."""

import hashlib
import io
import wave
from contextlib import aclosing

import pytest
from asgiref.sync import sync_to_async
from django.urls import NoReverseMatch, reverse

from chat.models import Attachment, Thread, Turn, UsageRecord
from chat.services import conversation, parameters
from chat.services.turns import choices, launch, registry
from chat.upstream import chat_completions
from chat.upstream.client import GatewayClient, Timeouts
from chat.upstream.events import AudioDelta, ChoiceDelta, TextDelta, Usage
from chat.upstream.request import Api, Message, Parameters, Request
from chat.upstream.sse import SSEMessage
from demo_gateway.audio import AUDIO_TOKENS

pytestmark = pytest.mark.django_db(transaction=True)

SPOKEN = {"modalities": "text_audio", "audio_voice": "alloy", "audio_format": "wav"}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "uploads"


async def chat_thread(make_thread, user, **params) -> Thread:
    thread = await sync_to_async(make_thread)(user)
    thread.api, thread.params = Api.CHAT.value, params
    await thread.asave(update_fields=["api", "params"])
    return thread


async def send(user, thread, text) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


# -- settings and the wire ----------------------------------------------------------------------


def test_audio_settings_are_chat_only_and_need_a_voice():
    params, errors = parameters.validate({"modalities": "text_audio"}, "chat")
    assert errors == {"audio_voice": "Choose the voice of spoken answers."}
    params, errors = parameters.validate(SPOKEN, "chat")
    assert not errors and params == SPOKEN
    assert parameters.validate(SPOKEN, "responses")[0] == {}  # the Responses API has no audio
    body = chat_completions.encode(
        Request(
            Api.CHAT,
            "demo-chat",
            [Message("user", "hi")],
            parameters.request_parameters(params, "chat"),
        )
    )
    assert body["modalities"] == ["text", "audio"]
    assert body["audio"] == {"voice": "alloy", "format": "wav"}
    plain = chat_completions.encode(Request(Api.CHAT, "demo-chat", [Message("user", "hi")]))
    assert "modalities" not in plain and "audio" not in plain


def test_stream_translator_relays_other_choices_and_audio_pieces():
    translator = chat_completions.ChatStreamTranslator()
    chunks = [
        '{"id":"c","choices":[{"index":0,"delta":{"audio":{"id":"a","transcript":"Hel"}}}]}',
        '{"id":"c","choices":[{"index":1,"delta":{"content":"Other"}}]}',
        '{"id":"c","choices":[{"index":0,"delta":{"audio":{"id":"a","data":"AAEC"}}}]}',
        '{"id":"c","choices":[{"index":1,"delta":{"audio":{"data":"AwQ=","transcript":"!"}}}]}',
    ]
    events = [e for chunk in chunks for e in translator.feed(SSEMessage(event="", data=chunk))]
    assert TextDelta("Hel") in events and ChoiceDelta(1, "Other") in events
    assert AudioDelta("AAEC", 0) in events and AudioDelta("AwQ=", 1) in events
    assert ChoiceDelta(1, "!") in events


async def test_the_demo_speaks_over_the_real_client(demo_gateway_url, demo_api_key):
    client = GatewayClient(demo_gateway_url, demo_api_key, timeouts=Timeouts(2, 5, 30))
    params = Parameters(n=2, modalities="text_audio", audio_voice="alloy", audio_format="wav")
    body = chat_completions.encode(Request(Api.CHAT, "demo-chat", [Message("user", "Hi")], params))
    async with aclosing(client.stream_chat(body)) as stream:
        events = [event async for event in stream]
    await client.aclose()
    output = choices.OtherOutput()
    for event in events:
        if isinstance(event, ChoiceDelta | AudioDelta):
            output.add(event)
    assert "Choice 1 of 2." in "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "Choice 2 of 2." in output.text(1)
    assert all(wave_frames(bytes(output.audio[c])) > 0 for c in (0, 1))
    assert next(e for e in events if isinstance(e, Usage)).audio_tokens == 2 * AUDIO_TOKENS


def wave_frames(data: bytes) -> int:
    with wave.open(io.BytesIO(data)) as sound:
        return sound.getnframes()


def test_usage_shares_add_up_to_the_total():
    total = Usage(101, 40, 141, 7, 3, 85, 41)
    shares = choices.usage_shares(total, 3)
    assert sum(shares, Usage()) == total
    assert [s.input_tokens for s in shares] == [34, 34, 33]


def test_pcm16_is_stored_as_a_playable_wav():
    samples = b"\x01\x00\x02\x00" * 100
    with wave.open(io.BytesIO(choices.wav_of_pcm16(samples))) as sound:
        assert sound.getframerate() == choices.PCM16_SAMPLE_RATE
        assert sound.readframes(200) == samples


# -- turns ----------------------------------------------------------------------------------------


async def test_two_choices_become_two_sibling_turns_and_the_page_shows_the_switcher(
    make_thread, user, client
):
    thread = await chat_thread(make_thread, user, n=2)
    first = await send(user, thread, "Pick a colour")
    assert first.status == Turn.Status.COMPLETED, first.error
    turns = [t async for t in Turn.objects.filter(thread=thread).order_by("pk")]
    assert len(turns) == 2
    chosen, other = turns
    assert (chosen.pk, chosen.choice_index, other.choice_index) == (first.pk, 0, 1)
    assert other.parent_id == chosen.parent_id and other.user_text == "Pick a colour"
    assert "Choice 1 of 2." in chosen.output_text and "Choice 2 of 2." in other.output_text
    # The usage covered both answers: each keeps a share, and the records add up to it.
    records = [r async for r in UsageRecord.objects.filter(thread=thread)]
    assert sorted(r.turn_id for r in records) == [chosen.pk, other.pk]
    assert chosen.output_tokens > 0 and other.output_tokens > 0
    assert sum(r.total_tokens for r in records) == chosen.total_tokens + other.total_tokens
    await sync_to_async(client.force_login)(user)
    html = (await sync_to_async(client.get)(f"/t/{thread.pk}/")).content.decode()
    assert '<span class="branch-position">1/2</span>' in html
    assert "Choice 1 of 2." in html and "Choice 2 of 2." not in html


async def test_the_chosen_choice_continues_the_thread(make_thread, user, demo_requests):
    thread = await chat_thread(make_thread, user, n=2)
    await send(user, thread, "Two ways")
    other = await Turn.objects.aget(thread=thread, choice_index=1)
    fresh = await Thread.objects.aget(pk=thread.pk)
    assert await conversation.sync_to_async_switch(fresh, other.pk)
    follow_up = await send(user, thread, "Go on")
    assert follow_up.parent_id == other.pk
    messages = demo_requests()[-1]["messages"]
    assert messages[1]["role"] == "assistant" and "Choice 2 of 2." in messages[1]["content"]


async def test_a_spoken_answer_is_stored_and_played_next_to_its_transcript(
    make_thread, user, client
):
    thread = await chat_thread(make_thread, user, **SPOKEN)
    turn = await send(user, thread, "Say hello")
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert "Echo: Say hello" in turn.output_text  # the transcript is the answer's text
    assert turn.audio_tokens == AUDIO_TOKENS
    audio = await Attachment.objects.aget(turn=turn)
    assert (audio.kind, audio.from_model, audio.content_type) == ("audio", True, "audio/wav")
    assert audio.owner_id == user.pk and audio.thread_id == thread.pk
    data = await sync_to_async(lambda: audio.file.open("rb").read())()
    assert wave_frames(data) > 0 and hashlib.sha256(data).hexdigest() == audio.sha256
    assert audio.size == len(data)
    await sync_to_async(client.force_login)(user)
    html = (await sync_to_async(client.get)(f"/t/{thread.pk}/")).content.decode()
    assert '<figure class="spoken-answer">' in html
    assert 'aria-label="Spoken answer"' in html and "<audio controls" in html
    assert f'aria-describedby="turn-{turn.pk}-body"' in html
    try:  # the serving view comes with uploads (chat:attachment)
        url = reverse("chat:attachment", kwargs={"attachment_id": audio.pk})
    except NoReverseMatch:
        url = None
    player = '<audio controls preload="metadata"' + (f' src="{url}"' if url else "")
    assert player + ' aria-label="Spoken answer"' in html
    assert f"{AUDIO_TOKENS} audio tokens" in html


async def test_choices_each_keep_their_own_spoken_answer(make_thread, user):
    thread = await chat_thread(make_thread, user, n=2, **SPOKEN)
    first = await send(user, thread, "Speak twice")
    other = await Turn.objects.aget(thread=thread, choice_index=1)
    sounds = [
        await sync_to_async(lambda t=t: Attachment.objects.get(turn=t).file.open("rb").read())()
        for t in (first, other)
    ]
    assert sounds[0] != sounds[1] and all(wave_frames(s) > 0 for s in sounds)


async def test_a_voice_the_gateway_cannot_produce_fails_clearly(make_thread, user):
    thread = await chat_thread(make_thread, user, **{**SPOKEN, "audio_format": "mp3"})
    turn = await send(user, thread, "Say it in mp3")
    assert turn.status == Turn.Status.FAILED and "audio.format" in turn.error
    assert not await Attachment.objects.filter(turn=turn).aexists()

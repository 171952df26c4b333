"""Images and files on the wire: what the encoders send for ``Message.files`` in both APIs, at the
demo gateway (the bytes that arrive hash like the file's), continued with ``previous_response_id``
or on the full-history fallback, image tokens stored, and a model that refuses images.

The turn tests give user messages their files by wrapping ``conversation.history`` (the files of
a message come from its attachments there, chat/services/conversation.py): what is under test is
everything after it, from the encoders to the stored turn."""

import base64
import dataclasses
import hashlib
import io
from contextlib import aclosing

import pytest
from PIL import Image

from chat.models import Turn, UsageRecord
from chat.services import conversation
from chat.services.turns import launch, registry
from chat.upstream import encoding
from chat.upstream.client import GatewayClient, Timeouts
from chat.upstream.events import Completed, TextDelta, Usage
from chat.upstream.request import Api, Message, MessageFile, Request
from demo_gateway.media import IMAGE_TOKENS


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PHOTO = MessageFile("photo.png", "image/png", png(7, 5))
NOTES = MessageFile("notes.md", "text/markdown", b"# Notes\nsecond line\n", "# Notes\nsecond line")
PDF = MessageFile("report.pdf", "application/pdf", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", None)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.endswith(";base64")
    return base64.b64decode(payload)


def arrived(body: dict) -> dict[str, str]:
    """{file name or "image": sha256} of every image and file part in a request body."""
    found: dict[str, str] = {}
    items = body.get("input") if "input" in body else body["messages"]
    for item in items if isinstance(items, list) else []:
        content = item.get("content")
        for part in content if isinstance(content, list) else []:
            if part["type"] == "input_image":
                found["image"] = sha(data_url_bytes(part["image_url"]))
            elif part["type"] == "image_url":
                found["image"] = sha(data_url_bytes(part["image_url"]["url"]))
            elif part["type"] == "input_file":
                found[part["filename"]] = sha(data_url_bytes(part["file_data"]))
            elif part["type"] == "file":
                found[part["file"]["filename"]] = sha(data_url_bytes(part["file"]["file_data"]))
    return found


@pytest.fixture
async def client(demo_gateway_url, demo_api_key):
    client = GatewayClient(demo_gateway_url, demo_api_key, timeouts=Timeouts(2, 5, 30))
    yield client
    await client.aclose()


async def answer(client: GatewayClient, request: Request) -> tuple[str, Usage]:
    body = encoding.encode(request)
    stream = client.stream_responses if request.api == Api.RESPONSES else client.stream_chat
    async with aclosing(stream(body)) as events:
        seen = [event async for event in events]
    usage = next(e for e in seen if isinstance(e, Usage))
    return "".join(e.text for e in seen if isinstance(e, TextDelta)), usage


# -- the encoders, at the demo gateway ------------------------------------------------------------


async def test_responses_sends_images_and_files_inline_and_the_bytes_arrive_whole(
    client, demo_requests
):
    message = Message("user", "What are these?", (PHOTO, PDF))
    text, usage = await answer(client, Request(Api.RESPONSES, "demo-chat", [message]))
    (body,) = demo_requests()
    content = body["input"][0]["content"]
    assert [part["type"] for part in content] == ["input_text", "input_image", "input_file"]
    assert arrived(body) == {"image": sha(PHOTO.data), "report.pdf": sha(PDF.data)}
    assert f"image: png 7×5 sha256:{sha(PHOTO.data)[:8]}" in text
    assert f"file: report.pdf {len(PDF.data)} bytes, first line: %PDF-1.4" in text
    assert usage.image_tokens == IMAGE_TOKENS


async def test_chat_sends_images_as_image_url_and_documents_as_their_text(client, demo_requests):
    message = Message("user", "Read these", (PHOTO, NOTES, PDF))
    text, usage = await answer(client, Request(Api.CHAT, "demo-chat", [message]))
    (body,) = demo_requests()
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "Read these"}
    assert content[2] == {"type": "text", "text": "File notes.md:\n\n# Notes\nsecond line"}
    # A document without text (nothing could be read from it) goes as the file itself.
    assert arrived(body) == {"image": sha(PHOTO.data), "report.pdf": sha(PDF.data)}
    assert f"image: png 7×5 sha256:{sha(PHOTO.data)[:8]}" in text
    assert usage.image_tokens == IMAGE_TOKENS


async def test_chat_sends_the_file_part_when_the_model_takes_files(client, demo_requests):
    message = Message("user", "Read this", (NOTES,))
    request = Request(Api.CHAT, "demo-chat", [message], file_parts=True)
    text, _ = await answer(client, request)
    assert arrived(demo_requests()[0]) == {"notes.md": sha(NOTES.data)}
    assert f"file: notes.md {len(NOTES.data)} bytes, first line: # Notes" in text


async def test_continuing_a_response_sends_only_the_new_message_and_its_files(
    client, demo_requests
):
    first = [Message("user", "Here is a photo", (PHOTO,))]
    body = encoding.encode(Request(Api.RESPONSES, "demo-chat", first))
    async with aclosing(client.stream_responses(body)) as events:
        (completed,) = [e async for e in events if isinstance(e, Completed)]
    response_id = completed.response_id
    history = [*first, Message("assistant", "Nice."), Message("user", "And this", (PDF,))]
    request = Request(Api.RESPONSES, "demo-chat", history, continue_from=response_id)
    text, _ = await answer(client, request)
    body = demo_requests()[-1]
    assert body["previous_response_id"] == response_id
    assert len(body["input"]) == 1 and arrived(body) == {"report.pdf": sha(PDF.data)}
    assert "file: report.pdf" in text and "image: png" not in text
    follow_up = [*history, Message("assistant", "Ok."), Message("user", "Thanks")]
    request = Request(Api.RESPONSES, "demo-chat", follow_up, continue_from=response_id)
    assert encoding.encode(request)["input"] == "Thanks"  # a message without files: plain text


# -- turns ----------------------------------------------------------------------------------------


@pytest.fixture
def files_by_text(monkeypatch):
    """User messages get the files listed here for their text (as their attachments would)."""
    files: dict[str, tuple[MessageFile, ...]] = {}
    original = conversation.history

    def history(path, new_text, *attachments):
        return [
            dataclasses.replace(m, files=files.get(m.text, ())) if m.role == "user" else m
            for m in original(path, new_text, *attachments)
        ]

    monkeypatch.setattr(conversation, "history", history)
    return files


async def run_turn(user, thread, text: str) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


@pytest.mark.django_db(transaction=True)
async def test_turn_stores_image_tokens_and_follow_ups_do_not_resend_files(
    make_thread, user, files_by_text, demo_requests
):
    thread = await make_thread_async(make_thread, user)
    files_by_text["Look at my photo"] = (PHOTO,)
    first = await run_turn(user, thread, "Look at my photo")
    assert first.status == Turn.Status.COMPLETED, first.error
    assert f"image: png 7×5 sha256:{sha(PHOTO.data)[:8]}" in first.output_text
    assert first.image_tokens == IMAGE_TOKENS
    record = await UsageRecord.objects.aget(turn=first)
    assert record.image_tokens == IMAGE_TOKENS
    second = await run_turn(user, thread, "What colour was it?")
    body = demo_requests()[-1]
    assert body["previous_response_id"] == first.response_id
    assert body["input"] == "What colour was it?"
    assert second.image_tokens == IMAGE_TOKENS  # still in the context the gateway holds


@pytest.mark.django_db(transaction=True)
async def test_full_history_fallback_sends_every_messages_files_again(
    make_thread, user, files_by_text, demo_requests
):
    thread = await make_thread_async(make_thread, user)
    files_by_text["Photo first"] = (PHOTO,)
    files_by_text["Then the report"] = (PDF,)
    first = await run_turn(user, thread, "Photo first")
    await Turn.objects.filter(pk=first.pk).aupdate(response_id="resp_forgotten")
    second = await run_turn(user, thread, "Then the report")
    assert second.status == Turn.Status.COMPLETED, second.error
    rejected, retried = demo_requests()[-2:]
    assert rejected["previous_response_id"] == "resp_forgotten"
    assert arrived(rejected) == {"report.pdf": sha(PDF.data)}
    assert "previous_response_id" not in retried
    assert arrived(retried) == {"image": sha(PHOTO.data), "report.pdf": sha(PDF.data)}
    assert second.image_tokens == IMAGE_TOKENS  # sent again, counted once


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("api", [Api.RESPONSES, Api.CHAT])
async def test_a_model_that_cannot_read_images_says_so_in_the_turn(
    make_thread, user, files_by_text, api
):
    thread = await make_thread_async(make_thread, user, model="demo-text", api=api)
    files_by_text["Describe this"] = (PHOTO,)
    turn = await run_turn(user, thread, "Describe this")
    assert turn.status == Turn.Status.FAILED
    assert turn.error.startswith("This model cannot read the images or files attached")
    assert "demo-text" in turn.error  # the gateway's own words follow


async def make_thread_async(make_thread, user, *, model="demo-chat", api=None):
    from asgiref.sync import sync_to_async

    thread = await sync_to_async(make_thread)(user, model=model)
    if api is not None:
        thread.api = api.value
        await thread.asave(update_fields=["api"])
    return thread


async def test_the_model_list_says_which_models_read_files(client):
    models, takes_files = await client.list_models_and_inputs()
    assert "demo-chat" in takes_files and "demo-text" in models and "demo-text" not in takes_files


@pytest.mark.django_db(transaction=True)
async def test_chat_documents_go_as_file_parts_once_the_model_list_says_so(
    make_thread, user, files_by_text, demo_requests, provider
):
    from chat.services import providers

    thread = await make_thread_async(make_thread, user, api=Api.CHAT)
    files_by_text["Summarise my notes"] = (NOTES,)
    files_by_text["And again"] = (NOTES,)
    await run_turn(user, thread, "Summarise my notes")  # no model list cached yet: the text
    content = demo_requests()[-1]["messages"][0]["content"]
    assert content[1] == {"type": "text", "text": "File notes.md:\n\n# Notes\nsecond line"}
    await providers.models_of(provider, refresh=True)
    turn = await run_turn(user, thread, "And again")
    assert arrived(demo_requests()[-1]) == {"notes.md": sha(NOTES.data)}
    assert f"file: notes.md {len(NOTES.data)} bytes, first line: # Notes" in turn.output_text

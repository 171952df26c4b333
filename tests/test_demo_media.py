"""The demo gateway's images, files, spoken answers and their usage, in both wire formats
(in-process ASGI: these are the demo's own contract; the client side is in test_files_wire)."""

import base64
import hashlib
import io
import json
import wave

import httpx
import pytest
from PIL import Image

from demo_gateway import make_app
from demo_gateway.media import IMAGE_TOKENS


def image_bytes(fmt: str, size=(3, 2)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def sha8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


@pytest.fixture
async def post():
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo/v1/") as raw:

        async def send(path, body):
            return await raw.post(path, json=body)

        yield send


def responses_body(*parts, model="demo-chat"):
    content = [{"type": "input_text", "text": "What is attached?"}, *parts]
    return {"model": model, "input": [{"role": "user", "content": content}]}


def answer_of(response: httpx.Response) -> str:
    body = response.json()
    return body["output"][-1]["content"][0]["text"]


@pytest.mark.parametrize(
    ("fmt", "media_type", "size"),
    [
        ("PNG", "image/png", (3, 2)),
        ("JPEG", "image/jpeg", (640, 480)),
        ("WEBP", "image/webp", (17, 9)),
        ("GIF", "image/gif", (1, 300)),
    ],
)
async def test_responses_image_is_described_by_format_size_and_hash(post, fmt, media_type, size):
    data = image_bytes(fmt, size)
    part = {"type": "input_image", "image_url": data_url(data, media_type)}
    response = await post("responses", responses_body(part))
    assert response.status_code == 200, response.text
    expected = f"image: {fmt.lower()} {size[0]}×{size[1]} sha256:{sha8(data)}"  # noqa: RUF001
    assert answer_of(response).startswith(expected + "\n")
    usage = response.json()["usage"]
    assert usage["input_tokens_details"]["image_tokens"] == IMAGE_TOKENS
    assert usage["input_tokens"] > IMAGE_TOKENS


async def test_responses_file_is_described_by_name_size_and_first_line(post):
    data = b"name,size\nreport,12\n"
    part = {"type": "input_file", "filename": "sizes.csv", "file_data": data_url(data, "text/csv")}
    response = await post("responses", responses_body(part))
    assert answer_of(response).startswith(
        f"file: sizes.csv {len(data)} bytes, first line: name,size\n"
    )
    assert response.json()["usage"]["input_tokens_details"]["image_tokens"] == 0


async def test_image_urls_are_refused_not_fetched(post):
    part = {"type": "input_image", "image_url": "https://example.com/cat.png"}
    response = await post("responses", responses_body(part))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (
        "does not fetch" in error["message"] and error["param"] == "input[0].content[1].image_url"
    )


async def test_bytes_that_are_not_an_image_are_refused(post):
    part = {"type": "input_image", "image_url": data_url(b"MZ\x90\x00 not a png", "image/png")}
    response = await post("responses", responses_body(part))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image_format"


async def test_chat_image_and_file_parts_and_image_tokens(post):
    png = image_bytes("PNG", (5, 4))
    content = [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": data_url(png, "image/png")}},
        {
            "type": "file",
            "file": {"filename": "a.txt", "file_data": data_url(b"hi\n", "text/plain")},
        },
    ]
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": content}]}
    response = await post("chat/completions", body)
    answer = response.json()["choices"][0]["message"]["content"]
    assert answer.startswith(
        f"image: png 5×4 sha256:{sha8(png)}\nfile: a.txt 3 bytes, first line: hi\n\n"  # noqa: RUF001
    )
    assert response.json()["usage"]["prompt_tokens_details"]["image_tokens"] == IMAGE_TOKENS


async def test_text_only_model_is_listed_so_and_refuses_images(post):
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo/v1/") as raw:
        models = {m["id"]: m for m in (await raw.get("models")).json()["data"]}
    assert models["demo-text"]["input_modalities"] == ["text"]
    assert "image" in models["demo-chat"]["input_modalities"]
    part = {"type": "input_image", "image_url": data_url(image_bytes("PNG"), "image/png")}
    response = await post("responses", responses_body(part, model="demo-text"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_content" and "image input" in error["message"]


def audio_body(**extra):
    return {
        "model": "demo-chat",
        "messages": [{"role": "user", "content": "Say hello"}],
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        **extra,
    }


def wav_frames(data: bytes) -> int:
    with wave.open(io.BytesIO(data)) as sound:
        assert sound.getnchannels() == 1 and sound.getsampwidth() == 2
        return sound.getnframes()


async def test_audio_answer_is_a_wav_with_its_transcript_and_audio_tokens(post):
    response = await post("chat/completions", audio_body(n=2))
    body = response.json()
    first, second = (choice["message"] for choice in body["choices"])
    assert first["content"] is None and "Echo: Say hello" in first["audio"]["transcript"]
    sounds = [base64.b64decode(m["audio"]["data"]) for m in (first, second)]
    assert all(wav_frames(sound) > 1000 for sound in sounds)
    assert sounds[0] != sounds[1]  # distinct choices
    details = body["usage"]["completion_tokens_details"]
    assert details["audio_tokens"] > 0 and details["audio_tokens"] % 2 == 0


async def test_streamed_audio_comes_as_base64_pieces_and_transcript_deltas(post):
    response = await post("chat/completions", audio_body(stream=True))
    chunks = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    audio = [c["choices"][0]["delta"].get("audio") for c in chunks if c["choices"]]
    audio = [a for a in audio if a]
    pieces = [base64.b64decode(a["data"]) for a in audio if "data" in a]
    transcript = "".join(a.get("transcript", "") for a in audio)
    assert len(pieces) > 1 and wav_frames(b"".join(pieces)) > 1000
    assert "Echo: Say hello" in transcript
    assert not any(c["choices"][0]["delta"].get("content") for c in chunks if c["choices"])


@pytest.mark.parametrize(
    ("change", "param"),
    [({"audio": {"voice": "alloy", "format": "mp3"}}, "audio.format"), ({"audio": None}, "audio")],
)
async def test_bad_audio_requests_are_refused(post, change, param):
    response = await post("chat/completions", audio_body(**change))
    assert response.status_code == 400 and response.json()["error"]["param"] == param

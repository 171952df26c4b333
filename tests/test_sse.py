"""The SSE parser must give the same messages however the network splits the bytes."""

import time

import pytest

from chat.upstream.sse import SSEMessage, SSEParser, iter_sse


def parse(*chunks: bytes) -> list[SSEMessage]:
    parser = SSEParser()
    messages = [m for chunk in chunks for m in parser.feed(chunk)]
    return messages + parser.close()


def test_basic_message_with_event_and_id():
    assert parse(b"event: response.created\nid: 7\ndata: {}\n\n") == [
        SSEMessage("response.created", "{}", "7")
    ]


def test_nothing_is_dispatched_before_the_blank_line():
    parser = SSEParser()
    assert parser.feed(b"data: hello\n") == []
    assert parser.feed(b"\n") == [SSEMessage(None, "hello")]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(ending):
    stream = ending.join([b"event: a", b"data: one", b"", b"data: two", b"", b""])
    assert parse(stream) == [SSEMessage("a", "one"), SSEMessage(None, "two")]


def test_crlf_split_between_cr_and_lf_is_one_line_ending():
    # If "\n" after a chunk-final "\r" were a second line ending, it would be a blank line and
    # dispatch the message early, splitting "first" and "second" into two messages.
    assert parse(b"data: first\r", b"\ndata: second\r", b"\n\r", b"\n") == [
        SSEMessage(None, "first\nsecond")
    ]


def test_cr_at_end_of_chunk_followed_by_text_still_ends_the_line():
    assert parse(b"data: a\r", b"\r", b"data: b\r\r") == [
        SSEMessage(None, "a"),
        SSEMessage(None, "b"),
    ]


def test_comments_are_ignored():
    assert parse(b": keep-alive\n\n: ping\ndata: x\n: another\n\n") == [SSEMessage(None, "x")]


def test_multi_line_data_is_joined_with_newlines():
    assert parse(b"data: line one\ndata:\ndata: line three\n\n") == [
        SSEMessage(None, "line one\n\nline three")
    ]


def test_field_without_space_and_only_one_space_stripped():
    assert parse(b"event:done\ndata:{}\n\ndata:  two spaces\n\n") == [
        SSEMessage("done", "{}"),
        SSEMessage(None, " two spaces"),
    ]


def test_messages_without_data_are_not_dispatched_and_event_resets():
    assert parse(b"event: lonely\n\nid: 3\n\ndata: x\n\n") == [SSEMessage(None, "x", "3")]


def test_empty_data_line_is_still_a_message():
    assert parse(b"data:\n\n") == [SSEMessage(None, "")]


def test_unknown_fields_and_retry_are_ignored():
    assert parse(b"retry: 1000\nfoo: bar\nnocolon\ndata: ok\n\n") == [SSEMessage(None, "ok")]


def test_close_flushes_a_last_message_without_blank_line_or_newline():
    assert parse(b"data: [DONE]") == [SSEMessage(None, "[DONE]")]
    parser = SSEParser()
    assert parser.feed(b"data: tail\n") == []
    assert parser.close() == [SSEMessage(None, "tail")]


def test_byte_order_mark_is_stripped_only_at_start():
    assert parse(b"\xef\xbb\xbf", b"data: a\n\n") == [SSEMessage(None, "a")]


SAMPLE = (
    "event: response.output_text.delta\r\n"
    'data: {"delta": "Grüße, 世界 🎉 — naïve"}\r\n'
    "\r\n"
    ": keep-alive\r\n"
    "data: 第二\n"
    "data: 🎉🎉\r"
    "\r"
).encode()
EXPECTED = [
    SSEMessage("response.output_text.delta", '{"delta": "Grüße, 世界 🎉 — naïve"}'),
    SSEMessage(None, "第二\n🎉🎉"),
]


@pytest.mark.parametrize("position", range(1, len(SAMPLE)))
def test_split_at_every_byte_position(position):
    assert parse(SAMPLE[:position], SAMPLE[position:]) == EXPECTED


def test_fed_one_byte_at_a_time():
    assert parse(*(SAMPLE[i : i + 1] for i in range(len(SAMPLE)))) == EXPECTED


def test_invalid_utf8_is_replaced_not_fatal():
    assert parse(b"data: a\xffb\n\n") == [SSEMessage(None, "a\ufffdb")]


@pytest.mark.serial  # timed
def test_long_line_in_small_chunks_is_linear():
    # A parser that re-scans or re-joins its buffer per chunk would need ~10 GB of copying here.
    line = b"data: " + b"x" * 1_000_000 + b"\n\n"
    parser = SSEParser()
    started = time.perf_counter()
    messages = []
    for i in range(0, len(line), 32):
        messages += parser.feed(line[i : i + 32])
    assert time.perf_counter() - started < 3
    assert len(messages) == 1
    assert len(messages[0].data) == 1_000_000


async def test_iter_sse_over_async_chunks():
    async def chunks():
        for piece in (b"data: a\n", b"\ndata: b"):
            yield piece

    assert [m async for m in iter_sse(chunks())] == [SSEMessage(None, "a"), SSEMessage(None, "b")]

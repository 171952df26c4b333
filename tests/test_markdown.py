"""Model output is rendered on the server, highlighted, and cleaned of anything executable."""

import random

import pytest

from chat.markdown import StreamingMarkdown, render_markdown

SAMPLE = """# Plan

Some *text* with `code` and a [link](https://example.com).

1. first
2. second

```python
def hello():
    return "world"
```

| a | b |
|---|:-:|
| 1 | 2 |

> quoted

- tail item
"""


def test_markdown_features_render():
    html = render_markdown(SAMPLE)
    assert "<h1>Plan</h1>" in html
    assert "<ol>" in html and "<table>" in html and "<blockquote>" in html
    assert 'class="language-python"' in html and 'class="hl-k"' in html  # highlighted keyword
    assert 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        '<iframe src="https://evil.example"></iframe>',
        "![x](javascript:alert(1))",
    ],
)
def test_untrusted_output_cannot_run_code(attack):
    html = render_markdown(attack)
    assert "<script" not in html
    assert "<iframe" not in html
    assert "onerror=" not in html.replace("onerror=alert(1)&gt;", "")  # escaped text is fine
    assert 'href="javascript' not in html and 'src="javascript' not in html


def test_streaming_render_matches_whole_render_for_any_split():
    rng = random.Random(7)
    for _ in range(30):
        stream = StreamingMarkdown()
        position = 0
        while position < len(SAMPLE):
            step = rng.randint(1, 12)
            stream.append(SAMPLE[position : position + step])
            position += step
            if rng.random() < 0.5:
                stream.flush()
        stream.flush()
        assert "".join(stream.blocks) + stream.tail_html == render_markdown(SAMPLE)


def test_streaming_hands_out_each_finished_block_once():
    stream = StreamingMarkdown()
    stream.append("First paragraph.\n\nSecond")
    new, tail = stream.flush()
    assert new == ["<p>First paragraph.</p>\n"]
    assert tail == "<p>Second</p>\n"
    stream.append(" paragraph grows.")
    new, tail = stream.flush()
    assert new == []
    assert tail == "<p>Second paragraph grows.</p>\n"


def test_an_open_code_fence_streams_as_code():
    stream = StreamingMarkdown()
    stream.append("```python\nx = 1\n")
    _, tail = stream.flush()
    assert "<pre" in tail and "x" in tail


def test_an_open_code_block_is_highlighted_once_it_is_closed():
    stream = StreamingMarkdown()
    stream.append("Intro.\n\n```python\ndef f():\n    return 1\n")
    _, tail = stream.flush()
    assert 'class="language-python"' in tail and "hl-" not in tail  # plain while open
    assert "def f():" in tail
    stream.append("```")
    _, tail = stream.flush()
    assert 'class="hl-k"' in tail  # closed: highlighted, though still the last block
    stream.append("\n\nAfter.")
    new, tail = stream.flush()
    assert new == [render_markdown("```python\ndef f():\n    return 1\n```\n\n")]
    assert tail == "<p>After.</p>\n"


def test_a_fence_closed_with_a_longer_or_other_marker():
    for text, closed in [
        ("~~~python\nx = 1\n~~~~", True),
        ("```python\nx = 1\n  ```  ", True),
        ("````python\nx = 1\n```", False),  # shorter than the opening: still open
        ("```python\nx = 1\n~~~", False),  # another character: still open
        ("```python\nx = 1", False),
    ]:
        stream = StreamingMarkdown()
        stream.append(text)
        _, tail = stream.flush()
        if closed:
            assert tail == render_markdown(text) and "hl-" in tail, text
        else:
            assert "hl-" not in tail and "x = 1" in tail and "<pre>" in tail, text


def test_one_line_of_prose_streams_exactly_as_the_parser_renders_it():
    rng = random.Random(11)
    alphabet = "abcXYZéß中 0123456789,.;:?!'\"()/%+=$@#-_*`~[]<>&|\\\t\u00a0" + " " * 6
    checked = 0
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        text = "\n" * rng.randint(0, 2) + text + "\n" * rng.randint(0, 1)
        stream = StreamingMarkdown()
        stream.append(text)
        _, tail = stream.flush()
        assert tail == render_markdown(text), text
        checked += 1
    assert checked == 20_000


def test_a_flush_with_nothing_new_parses_nothing(monkeypatch):
    from chat import markdown

    stream = StreamingMarkdown()
    stream.append("# Title\n\n- a\n- b")
    first = stream.flush()
    monkeypatch.setattr(markdown._PARSER, "parse", lambda *a, **k: pytest.fail("parsed again"))
    assert stream.flush() == ([], first[1])

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

"""Math in answers (issue 18, item 9): LaTeX rendered on the server as MathML, sanitized like
everything else, prices left alone, bad LaTeX shown as its source, streaming still linear."""

import re

import pytest

from chat import markdown, markdown_math
from chat.markdown import StreamingMarkdown, render_markdown

TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>")
ATTRIBUTE_NAME = re.compile(r'\s([^\s=]+)="')


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ("The area is $\\pi r^2$ here.", "inline"),
        ("$$\n\\frac{a}{b}\n$$", "block"),
        ("Also \\(\\pi r^2\\) inline.", "inline"),
        ("\\[\n\\frac{a}{b}\n\\]", "block"),
        ("On one line: $$\\frac{a}{b}$$ within text.", "block"),
    ],
)
def test_each_delimiter_renders_mathml(text, display):
    html = render_markdown(text)
    assert f'<math display="{display}">' in html, html
    assert "<mfrac>" in html or "<msup><mi>r</mi><mn>2</mn></msup>" in html, html
    assert "$" not in html and "\\(" not in html and "\\[" not in html  # no source left over


def test_surrounding_text_and_markdown_stay_as_they_were():
    html = render_markdown("**Bold** then $x_1$ and `code $y$`.")
    assert "<strong>Bold</strong>" in html
    assert "<msub><mi>x</mi><mn>1</mn></msub>" in html
    assert "<code>code $y$</code>" in html  # code is code, not math


@pytest.mark.parametrize(
    "text",
    [
        "$\\href{javascript:alert(1)}{click}$",
        "$<script>alert(1)</script>$",
        "$\\text{<img src=x onerror=alert(1)>}$",
        "\\(\\text{</math><img src=x onerror=alert(1)>}\\)",
        "$$\n\\text{<a href='javascript:alert(1)'>x</a>}\n$$",
        "$\\style{background:url(https://evil.example/x)}{x}$",
        "$\\text{&lt;script&gt;}$",
        "\\[\\mathrm{x}\\href{https://evil.example}{y}\\]",
    ],
)
def test_math_cannot_carry_html_or_script(text):
    html = render_markdown(text)
    assert "<math" in html, html  # it did render as math, and still nothing got through:
    tags = TAG.findall(html)
    for name, attributes in tags:
        assert name in markdown._ALLOWED_TAGS, (name, html)
        names = set(ATTRIBUTE_NAME.findall(attributes))
        assert not names & {"href", "style", "src", "class", "id"} or name in {"div", "code"}
        assert not any(attribute.startswith("on") for attribute in names), html
    assert not {"img", "script", "a"} & {name for name, _ in tags}, html
    # Text inside <mtext> may say anything (escaped); no attribute carries a URL.
    assert not any("javascript:" in a or "evil.example" in a for _, a in tags), html


def test_text_in_math_shows_as_text():
    html = render_markdown("$\\text{a < b & c}$")
    assert "<mtext>a&nbsp;&lt;&nbsp;b&nbsp;&amp;&nbsp;c</mtext>" in html, html


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10.",
        "Plans at $5, $20 or $100 a month.",
        "Pay $ 5 now and $ 6 later.",
        "From $3.50 to $4.",
    ],
)
def test_prices_with_dollars_stay_text(text):
    html = render_markdown(text)
    assert "<math" not in html
    assert html == f"<p>{text}</p>\n"


@pytest.mark.parametrize("text", ["$x^2$ is 4", "$x$ costs 5", "$$y$$ and 1"])
def test_a_formula_at_a_paragraphs_start_does_not_depend_on_how_the_paragraph_ends(text):
    # dollarmath read the paragraph's last character as the one before its first "$".
    assert "<math" in render_markdown(text)
    assert "<math" in render_markdown(text.rstrip("0123456789") + "a")


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("Half: $\\frac{1}{$ done.", "$\\frac{1}{$"),
        ("$$\n\\frac{1}{\n$$", "$$\n\\frac{1}{\n$$"),
        ("\\[\\begin{matrix}\\]", "\\[\\begin{matrix}\\]"),
    ],
)
def test_bad_latex_shows_its_source(text, source):
    html = render_markdown(text)
    assert f'<code class="math-source">{source}</code>' in html, html
    assert "<math" not in html


def test_a_converter_failure_of_any_kind_shows_the_source(monkeypatch):
    def broken(latex, display):
        raise RuntimeError("converter bug")

    monkeypatch.setattr(markdown_math, "convert_to_element", broken)
    markdown_math.latex_to_mathml.cache_clear()
    try:
        html = render_markdown("Then $\\alpha$ and more.")
    finally:
        markdown_math.latex_to_mathml.cache_clear()
    assert html == '<p>Then <code class="math-source">$\\alpha$</code> and more.</p>\n'


def test_an_overlong_formula_is_shown_as_source_not_converted():
    latex = "x+" * (markdown_math.MAX_LATEX_CHARS // 2 + 1) + "x"
    html = render_markdown(f"$${latex}$$")
    assert "<math" not in html and 'class="math-source"' in html


def _stream(text: str, chunk: int) -> tuple[str, list[str]]:
    stream = StreamingMarkdown()
    html_blocks: list[str] = []
    tail = ""
    for start in range(0, len(text), chunk):
        stream.append(text[start : start + chunk])
        blocks, tail = stream.flush()
        html_blocks.extend(blocks)
    return "".join(html_blocks) + tail, html_blocks


def test_streamed_math_ends_exactly_as_the_whole_render():
    text = "".join(
        f"Step {i}: let $x_{i} = \\frac{{{i}}}{{2}}$, costing $5.\n\n"
        f"$$\n\\sum_{{k=0}}^{{{i}}} k\n$$\n\n"
        f"\\[\n\\sqrt{{{i}}}\n\\]\n\n"
        for i in range(30)
    )
    # A blank line inside display math: not math, however the stream was cut.
    text += "$$\n\\frac{a}{b}\n\nmore\n$$\n\n\\[\nx\n\ny\n\\]\n"
    for chunk in (1, 7, 64):
        streamed, _ = _stream(text, chunk)
        assert streamed == render_markdown(text), chunk


def test_a_line_of_prose_with_math_streams_as_math():
    stream = StreamingMarkdown()
    stream.append("Let $x^2$ be")
    _, tail = stream.flush()
    assert "<msup><mi>x</mi><mn>2</mn></msup>" in tail


def test_streaming_math_stays_linear(monkeypatch):
    """Finished math blocks are rendered once: the text parsed per flush stays the open tail,
    so the total parsed is a small multiple of the answer, not its square."""
    parsed: list[int] = []
    render_tail = markdown.render_tail

    def counting(text, images=None):
        parsed.append(len(text))
        return render_tail(text, images)

    monkeypatch.setattr(markdown, "render_tail", counting)
    text = "".join(
        f"$$\n\\frac{{{i}}}{{2}}\n$$\n\nand $y_{i}$ then \\[ z_{i} \\]\n\n" for i in range(400)
    )
    _, blocks = _stream(text, 16)
    assert len(blocks) > 300  # blocks were handed out as they finished
    assert sum(parsed) < 10 * len(text), (sum(parsed), len(text))

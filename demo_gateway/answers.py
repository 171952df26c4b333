"""The deterministic text: answers, tool reports, reasoning summaries and their chunks."""

from __future__ import annotations

import re
from collections.abc import Iterator

from demo_gateway.conversation import Message, count_words, text_of

_TITLE_REQUEST = re.compile(r"\bshort title\b", re.IGNORECASE)
TITLE_WORDS = 5


def asks_for_title(instructions: str) -> bool:
    """A request whose instructions (or system message) ask for "a short title"."""
    return bool(_TITLE_REQUEST.search(instructions))


def compose_title(user_text: str) -> str:
    """A title from the message: its first five words, without markdown, first letter upper."""
    words = re.sub(r"[#`*_\[\]<>\"]", " ", user_text).split()[:TITLE_WORDS]
    title = " ".join(words).rstrip(".,;:!?")
    return title[:1].upper() + title[1:] if title else "Untitled chat"


def compose_answer(user_text: str, turn: int) -> str:
    """A short markdown answer: heading, echo, list, python code, table, turn count."""
    echo = user_text.strip() or "(an empty message)"
    title = re.sub(r"[#`*_\[\]<>]", "", echo.splitlines()[0]).strip()[:60] or "your message"
    words = echo.split()
    longest = max(words, key=len).replace("`", "") if words else ""
    quote = "\n".join(f"> {line}" if line.strip() else ">" for line in echo.splitlines())
    return "\n".join(
        [
            f"## Echo: {title}",
            "",
            f"This is turn {turn} of the conversation.",
            "",
            quote,
            "",
            "Here is what the demo gateway noticed:",
            "",
            f"- Your message has {len(words)} words and {len(echo)} characters.",
            f"- Its longest word is `{longest or '-'}`.",
            "- Directives such as `#chunks=N` were removed before echoing.",
            "",
            "```python",
            "def measure(text: str) -> dict[str, int]:",
            '    return {"words": len(text.split()), "characters": len(text)}',
            "",
            f"print(measure(message))  # {{'words': {len(words)}, 'characters': {len(echo)}}}",
            "```",
            "",
            "| Measure | Value |",
            "| --- | --- |",
            f"| Turn | {turn} |",
            f"| Words | {len(words)} |",
            f"| Characters | {len(echo)} |",
        ]
    )


def compose_tool_report(conversation: list[Message], results: list[Message]) -> str:
    """The answer once tool results are in: one line quoting each result, in order."""
    names = {
        call["call_id"]: call["name"]
        for message in conversation
        for call in message.get("tool_calls") or ()
    }
    lines = []
    for result in results:
        text = " ".join(text_of(result.get("content")).split()) or "nothing"
        end = "" if text.endswith((".", "!", "?")) else "."
        lines.append(f"The tool {names.get(result['call_id'], 'unknown')} returned: {text}{end}")
    return "\n".join(lines)


def compose_reasoning(user_text: str, turn: int) -> str:
    return (
        f"The user wrote {count_words(user_text)} words in turn {turn}. I will echo the message, "
        "then add a heading, a list, a code block and a table. No tool is needed."
    )


def tool_reasoning(names: list[str], results: int) -> str:
    if names:
        return f"I will call {', '.join(names)} and answer once the results are back."
    return f"{results} tool results are back. I will quote each of them in one line."


def tokens_of(text: str) -> list[str]:
    # Each token is a word with the whitespace before it, so joining them gives the text back.
    return re.findall(r"\s*\S+", text)


def filler_paragraphs(start: int) -> Iterator[str]:
    paragraph = start
    while True:
        paragraph += 1
        yield from tokens_of(
            f"\n\nFiller paragraph {paragraph} keeps this demo answer going for as many "
            "chunks as were asked for, with plain words that are easy to count."
        )


def split_chunks(tokens: list[str], per_chunk: int) -> list[str]:
    return ["".join(tokens[i : i + per_chunk]) for i in range(0, len(tokens), per_chunk)]

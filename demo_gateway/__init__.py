"""Built-in demo gateway: a small OpenAI-compatible server, as a plain ASGI app (no framework).

It speaks the same wire format as the real gateway (``/v1/models``, ``/v1/responses`` and
``/v1/chat/completions``, streamed or not, ``previous_response_id``, reasoning, both usage
schemas, function tools, ``n`` choices) with deterministic answers, so Switchboard works offline
and tests run the real HTTP client against it. Serve it alone with ``python -m demo_gateway
--port 9100`` or ``daphne demo_gateway.asgi:application``, or mount it under any prefix: it
matches on the end of the path.

Directives in the *last user message of the whole conversation* (including the history behind a
``previous_response_id``) drive it, and are removed from the echoed text. So a follow-up request
that only carries tool results still obeys the message that started the tool-call loop.

``#chunks=N``      answer in exactly N chunks (longer answers get filler paragraphs)
``#delay=MS``      pause MS milliseconds between chunks (argument pieces of a tool call too)
``#reasoning``     stream a reasoning summary first (model ``demo-reasoner`` always does)
``#usage=chat``    report usage as ``prompt_tokens…``; ``#usage=responses`` as ``input_tokens…``
``#fault=401|429|500|…``  answer with that HTTP status and an OpenAI-style error body
``#fault=cut``     stream a few deltas, then end the stream without finishing the answer
``#fault=malformed``  stream a few deltas, then a line that is not JSON, then the rest
``#fault=timeout`` stream a couple of deltas, then go silent (until the client hangs up)
``#fault=X@MODEL`` any fault above, only for requests to MODEL (e.g. ``#fault=503@gpt-5.4``)
``#call=NAME``     call the offered function tool NAME instead of answering; repeat the directive
                   for parallel calls in one response. Only until the first tool result for this
                   user message arrives: then the answer quotes the results, one line per call
                   ("The tool NAME returned: RESULT.").
``#loop``          keep calling the same tool(s) after every result (never answers in text)
``#badargs``       the arguments are not valid JSON (``{"expression": "6*7"`` without its brace)
``#wrongargs``     valid JSON of the wrong types (string → 42, number → "demo", …);
                   ``#wrongargs=missing`` leaves out every property (``{}``)

Titles: a request whose instructions (or system message) ask for "a short title" is answered
with the first five words of the user's message, first letter upper-cased (no reasoning, no
tool calls), so Switchboard's model-written chat titles are testable offline.

Tool calls follow ``tool_choice`` like OpenAI: ``"none"`` never calls; ``"required"`` calls the
``#call`` tools, else the first offered tool; a named function calls that tool. A forced choice
(``required`` or named) forces a call on *every* request that carries it, results or not, so send
it on the first request of a loop only. ``parallel_tool_calls: false`` keeps only the first call.
Arguments are deterministic, built from the tool's JSON schema: a property named ``expression``
gets ``"6*7"``; otherwise string → ``"demo"``, number → 2.5, integer → 3, boolean → true, enum →
its first value, array → [], object → {}. Tool calls are never cut by the output-token limit.

Tool results are checked like OpenAI does: a result for an unknown call id, or a call left without
its result, is an HTTP 400 ``invalid_request_error``.

Chat Completions ``n`` (1 to 128) returns that many choices; when ``n > 1`` each answer starts with
"Choice K of N." and usage counts all of them.

Images and files (``media``): Responses ``input_image`` (``image_url``: a base64 ``data:`` URL)
and ``input_file`` (``filename`` + ``file_data``), Chat ``image_url`` and ``file`` parts. URLs are
refused (400), never fetched. The answer starts with one checkable line per image or file of the
last user message: "image: png 640\u00d7480 sha256:<first 8 hex>" (size read from the PNG, JPEG,
WebP or GIF header) or "file: NAME SIZE bytes, first line: …". Each image in the conversation
counts ``IMAGE_TOKENS`` (85) input tokens, reported as ``input_tokens_details.image_tokens`` /
``prompt_tokens_details.image_tokens``. ``/v1/models`` lists ``input_modalities`` and
``output_modalities``; ``demo-text`` is text only and refuses images, files and audio with a 400.

Spoken answers (``audio``): Chat ``modalities: ["text", "audio"]`` with ``audio: {voice,
format}`` (``wav`` or ``pcm16``) answers with a 0.4 s tone (pitch per choice) instead of text:
``message.audio`` {id, data (base64), transcript, expires_at}, or streamed as ``delta.audio``
transcript pieces then base64 ``data`` pieces; ``completion_tokens_details.audio_tokens`` counts it.

It is its own package, apart from Switchboard's client code (``chat/upstream/``) and from Django:
it shares none of the app's translators, which is what makes it a fair test partner.
Modules: ``directives`` (the ``#`` words), ``conversation`` (requests read and validated),
``media`` (images and files), ``audio`` (spoken answers), ``tools``, ``answers`` (the
deterministic text), ``plans`` (one planned answer), ``wire`` (SSE events and JSON bodies),
``app`` (the ASGI app), ``asgi`` (an app configured from the environment), ``__main__``
(``python -m demo_gateway``).
"""

from demo_gateway.answers import compose_answer
from demo_gateway.app import DemoGateway, make_app
from demo_gateway.plans import MODELS

__all__ = ["MODELS", "DemoGateway", "compose_answer", "make_app"]

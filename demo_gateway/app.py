"""The ASGI application: routes, the API key, both endpoints, and pacing a stream."""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

from demo_gateway.asgi_io import (
    HANG_SECONDS,
    ASGIApp,
    Receive,
    Scope,
    Send,
    read_json,
    response_start,
    send_json,
    until_disconnect,
    wait_for,
    watch_disconnect,
)
from demo_gateway.audio import requested_audio
from demo_gateway.conversation import (
    Message,
    check_responses_tool_outputs,
    messages_from_chat,
    messages_from_input,
)
from demo_gateway.errors import Done, HTTPError, error_body, invalid_request, missing_parameter
from demo_gateway.plans import MODELS, Plan, check_modalities, make_plan, modalities_of
from demo_gateway.tools import offered_tools, requested_tool_choice
from demo_gateway.wire import (
    Cut,
    Frame,
    chat_completion,
    chat_frames,
    output_items,
    response_object,
    responses_frames,
)

_MAX_CHOICES = 128
_ROUTES = (
    ("/v1/models", "models"),
    ("/v1/responses", "responses"),
    ("/v1/chat/completions", "chat"),
    ("/v1/_demo/requests", "requests"),
)
_HTTP_FAULTS: dict[int, tuple[str, str, str | None]] = {
    401: (
        "Incorrect API key provided. You can find your API key in the demo console.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    429: (
        "Rate limit reached for requests. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
}


class DemoGateway:
    """The ASGI application. Its state (response memory, recorded requests) is per instance."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        chunk_delay: float = 0.0,
        words_per_chunk: int = 1,
        record_requests: int = 50,
        memory_size: int = 10_000,
    ) -> None:
        self.api_key = api_key or None
        self.chunk_delay = max(0.0, chunk_delay)
        self.words_per_chunk = max(1, words_per_chunk)
        self.requests: deque[Any] = deque(maxlen=max(1, record_requests))
        self.record = record_requests > 0
        self.memory: OrderedDict[str, list[Message]] = OrderedDict()
        self.memory_size = memory_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        try:
            await self._handle(scope, receive, send)
        except HTTPError as error:
            await send_json(send, error.status, error.body, error.headers)
        except Done:
            pass

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].rstrip("/")
        route = next((name for suffix, name in _ROUTES if path.endswith(suffix)), None)
        if route is None or (route == "requests" and not self.record):
            raise HTTPError(
                404, error_body(f"Unknown path {scope['path']!r}.", "invalid_request_error")
            )
        allowed = {"models": "GET", "responses": "POST", "chat": "POST", "requests": "GET DELETE"}
        if scope["method"] not in allowed[route].split():
            raise HTTPError(
                405,
                error_body(f"Method {scope['method']} is not allowed.", "invalid_request_error"),
                [(b"allow", allowed[route].replace(" ", ", ").encode())],
            )
        self._check_key(scope)
        if route == "models":
            data = [
                {"id": m, "object": "model", "owned_by": "switchboard-demo", **modalities_of(m)}
                for m in MODELS
            ]
            await send_json(send, 200, {"object": "list", "data": data})
        elif route == "requests":
            if scope["method"] == "DELETE":
                self.requests.clear()
            await send_json(send, 200, list(self.requests))
        else:
            body = await read_json(receive)
            if self.record:
                self.requests.append(body)
            if route == "responses":
                await self._responses(body, receive, send)
            else:
                await self._chat(body, receive, send)

    def _check_key(self, scope: Scope) -> None:
        if self.api_key is None:
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if not header:
            message = "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        elif scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        ):
            return
        else:
            message = "Incorrect API key provided."
        raise HTTPError(401, error_body(message, "invalid_request_error", "invalid_api_key"))

    async def _responses(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        model = _model(body)
        previous = body.get("previous_response_id")
        history: list[Message] = []
        if previous is not None:
            if not isinstance(previous, str) or previous not in self.memory:
                raise HTTPError(
                    400,
                    error_body(
                        f"Previous response with id '{previous}' not found.",
                        "invalid_request_error",
                        "previous_response_not_found",
                        "previous_response_id",
                    ),
                )
            self.memory.move_to_end(previous)
            history = self.memory[previous]
        new_messages = messages_from_input(body.get("input"))
        if new_messages is None and not (previous and "input" not in body):
            raise missing_parameter("input")
        check_responses_tool_outputs(history + (new_messages or []))
        check_modalities(model, new_messages or [], audio=False)
        tools = offered_tools(body, "responses")
        instructions = body.get("instructions")
        plan = make_plan(
            model=model,
            history=history,
            new_messages=new_messages or [],
            instructions=instructions if isinstance(instructions, str) else "",
            max_tokens=body.get("max_output_tokens"),
            default_usage="responses",
            words_per_chunk=self.words_per_chunk,
            tools=tools,
            tool_choice=requested_tool_choice(body, tools),
            parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        )
        plan.id = f"resp_{uuid.uuid4().hex}"
        _raise_http_fault(plan)
        remember = body.get("store", True) is not False

        def finished() -> None:
            # The function calls are remembered too, so that a follow-up carrying only
            # function_call_output items (and this id) continues the same conversation.
            if remember:
                self._remember(plan.id, [*plan.conversation, plan.first.as_message()])

        if body.get("stream"):
            await self._stream(receive, send, responses_frames(plan, body), plan, finished)
            return
        await self._before_whole_answer(plan, receive, send)
        finished()
        output = output_items(plan)
        await send_json(send, 200, response_object(plan, body, done=True, output=output))

    async def _chat(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        model = _model(body)
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise invalid_request(
                "'messages' must be a non-empty array.", "messages", "invalid_value"
            )
        messages = messages_from_chat(raw)
        audio = requested_audio(body)
        check_modalities(model, messages, audio=audio is not None)
        tools = offered_tools(body, "chat")
        n = body.get("n")
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_CHOICES:
            raise invalid_request(
                f"Invalid value for 'n': expected an integer from 1 to {_MAX_CHOICES}.",
                "n",
                "invalid_value",
            )
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        plan = make_plan(
            model=model,
            history=[],
            new_messages=messages,
            instructions="",
            max_tokens=max_tokens,
            default_usage="chat",
            words_per_chunk=self.words_per_chunk,
            tools=tools,
            tool_choice=requested_tool_choice(body, tools),
            parallel_tool_calls=body.get("parallel_tool_calls") is not False,
            n=n,
            audio=audio,
        )
        plan.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        _raise_http_fault(plan)
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            frames = chat_frames(plan, include_usage)
            await self._stream(receive, send, frames, plan, lambda: None)
            return
        await self._before_whole_answer(plan, receive, send)
        await send_json(send, 200, chat_completion(plan))

    async def _before_whole_answer(self, plan: Plan, receive: Receive, send: Send) -> None:
        """Stream faults, played out on a non-streamed answer."""
        fault = plan.directives.fault
        if fault == "timeout":
            if await until_disconnect(receive, HANG_SECONDS):
                raise Done
            raise HTTPError(504, error_body("The demo gateway timed out.", "server_error"))
        if fault in ("cut", "malformed"):
            await send(response_start(200, b"application/json"))
            body = b'{"id": "' + plan.id.encode() + b'", "object": '
            if fault == "malformed":
                body = b"{not json"
            await send({"type": "http.response.body", "body": body, "more_body": False})
            raise Done

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        frames: Iterator[Frame],
        plan: Plan,
        finished: Callable[[], None],
    ) -> None:
        delay = plan.directives.delay if plan.directives.delay is not None else self.chunk_delay
        await send(
            response_start(
                200, b"text/event-stream; charset=utf-8", [(b"cache-control", b"no-cache")]
            )
        )
        disconnected = asyncio.Event()
        # Watching for http.disconnect in its own task lets a paced or hanging stream stop as
        # soon as the client goes away, instead of writing into a closed socket for minutes.
        watcher = asyncio.create_task(watch_disconnect(receive, disconnected))
        try:
            sent_deltas = 0
            sent_frames = 0
            try:
                for frame in frames:
                    if frame.hang:
                        await wait_for(disconnected, HANG_SECONDS)
                        break
                    if frame.delta:
                        if sent_deltas and delay and await wait_for(disconnected, delay):
                            return
                        sent_deltas += 1
                    if disconnected.is_set():
                        return
                    await send(
                        {"type": "http.response.body", "body": frame.data, "more_body": True}
                    )
                    sent_frames += 1
                    if not delay and sent_frames % 16 == 0:
                        await asyncio.sleep(0)  # let other streams and the watcher run
                else:
                    finished()
            except Cut:
                pass
            if not disconnected.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher

    def _remember(self, response_id: str, conversation: list[Message]) -> None:
        self.memory[response_id] = conversation
        while len(self.memory) > self.memory_size:
            self.memory.popitem(last=False)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise missing_parameter("model")
    if model not in MODELS:
        raise HTTPError(
            404,
            error_body(
                f"The model '{model}' does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
                "model",
            ),
        )
    return model


def _raise_http_fault(plan: Plan) -> None:
    fault = plan.directives.fault
    if fault is None or not fault.isdigit():
        return
    status = int(fault)
    message, type_, code = _HTTP_FAULTS.get(
        status, (f"The demo gateway was asked to fail with {status}.", "server_error", None)
    )
    headers = [(b"retry-after", b"1")] if status == 429 else []
    raise HTTPError(status, error_body(message, type_, code), headers)


def make_app(
    *,
    api_key: str | None = None,
    chunk_delay: float = 0.0,
    words_per_chunk: int = 1,
    record_requests: int = 50,
) -> ASGIApp:
    """A new demo gateway. ``chunk_delay`` is in seconds; ``record_requests`` bodies are kept
    for ``GET /v1/_demo/requests`` (0 turns recording and that endpoint off)."""
    return DemoGateway(
        api_key=api_key,
        chunk_delay=chunk_delay,
        words_per_chunk=words_per_chunk,
        record_requests=record_requests,
    )

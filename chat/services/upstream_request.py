"""What each upstream request of a turn says, in neutral terms (``chat.upstream.request``), from
the stored turn, thread and tool calls; ``chat.upstream.encoding`` makes it a body for its API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.models import Turn
from chat.services import conversation, parameters, tool_loop
from chat.upstream.encoding import encode
from chat.upstream.request import Api, Request


@dataclass
class RequestPlan:
    """The inputs of every request of a turn, fixed when the turn starts."""

    api: str
    model: str
    params: dict[str, Any]
    path: list[Turn]  # the turns before this one, root first
    user_text: str
    user_tag: str  # a non-reversible id of the account, for upstream abuse monitoring
    tools: dict[str, tool_loop.ToolSpec] = field(default_factory=dict)
    file_parts: bool = False  # documents as Chat "file" parts (the model list says it reads files)

    def _request(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        api = Api(self.api)
        request = Request(
            api=api,
            model=self.model,
            history=conversation.history(self.path, self.user_text),
            parameters=parameters.request_parameters(self.params, api),
            tools=list(self.tools.values()),
            user=self.user_tag,
            file_parts=self.file_parts,
            **kwargs,
        )
        return self.api, encode(request)

    def first(self, *, full_history: bool = False) -> tuple[str, dict[str, Any]]:
        """(api, body) of the turn's first request; ``full_history`` when the upstream forgot
        the previous response, so the whole conversation is sent again."""
        parent = self.path[-1] if self.path else None
        previous = None if full_history else conversation.continuation_id(parent)
        return self._request(continue_from=previous)

    def after_tools(
        self, calls: list[tool_loop.ToolCallRecord], response_id: str
    ) -> tuple[str, dict[str, Any]]:
        """(api, body) handing the last step's results back to the model (``response_id``:
        the response that made the calls)."""
        return self._request(tool_steps=tool_loop.results_by_step(calls), continue_from=response_id)

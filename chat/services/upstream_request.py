"""What one upstream request of a turn contains, for either API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.models import Provider, Turn
from chat.services import conversation, parameters, tool_loop, tools
from chat.upstream import chat_completions, responses_api


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

    def _extra(self, *, first: bool = True) -> dict[str, Any]:
        params = self.params
        if not first and params.get("tool_choice") not in (None, "auto", "none"):
            # A forced choice (required, or a named function) would force a call at every step
            # and the loop would never end: it applies to the turn's first request only.
            params = {k: v for k, v in params.items() if k != "tool_choice"}
        extra = parameters.request_fields(params, self.api, tool_names=self.tools.keys())
        if self.tools:
            make = tools.responses_tool if self.api == Provider.Api.RESPONSES else tools.chat_tool
            extra["tools"] = [
                make(t.name, t.description, t.parameters) for t in self.tools.values()
            ]
        extra["user"] = self.user_tag
        return extra

    def first(self, *, full_history: bool = False) -> tuple[str, dict[str, Any]]:
        """(api, body) of the turn's first request."""
        if self.api == Provider.Api.CHAT:
            return self._chat([])
        parent = self.path[-1] if self.path else None
        previous = None if full_history else conversation.continuation_id(parent)
        payload: Any = (
            self.user_text if previous else conversation.history_messages(self.path, self.user_text)
        )
        return self.api, responses_api.build_request(
            self.model, payload, previous_response_id=previous, params=self._extra()
        )

    def after_tools(
        self, calls: list[dict[str, Any]], response_id: str
    ) -> tuple[str, dict[str, Any]]:
        """(api, body) handing the last step's results back to the model."""
        if self.api == Provider.Api.CHAT:
            return self._chat(calls)
        return self.api, responses_api.build_request(
            self.model,
            tool_loop.responses_outputs(tool_loop.last_step(calls)),
            previous_response_id=response_id,
            params=self._extra(first=False),
        )

    def _chat(self, calls: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        system = parameters.system_prompt(self.params)
        messages: list[dict[str, Any]] = conversation.history_messages(
            self.path, self.user_text, system
        )
        messages += tool_loop.chat_messages(calls)
        extra = self._extra(first=not calls)
        return self.api, chat_completions.build_request(self.model, messages, params=extra)

"""What each upstream request of a turn says, in neutral terms (``chat.upstream.request``), from
the stored turn, thread and tool calls; ``chat.upstream.encoding`` makes it a body for its API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.models import Turn
from chat.services import conversation, parameters, tool_loop
from chat.services.attachments import upstream as attachment_upstream
from chat.upstream.encoding import encode
from chat.upstream.request import Api, MessageFile, Request


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
    turn_id: int | None = None  # the turn these requests are for (its files go with it)
    file_turn_ids: list[int] | None = None  # turns with files (None: maybe any of them)
    # The files of the path's and this turn's user messages, by turn id: ``load_files``.
    files: dict[int, tuple[MessageFile, ...]] = field(default_factory=dict)
    files_loaded: bool = False

    async def load_files(self) -> None:
        """Read the conversation's files (once per turn), off the event loop."""
        if self.files_loaded:
            return
        if self.file_turn_ids is None:
            turn_ids = [turn.pk for turn in self.path]
            turn_ids += [self.turn_id] if self.turn_id is not None else []
        else:
            turn_ids = self.file_turn_ids
        self.files = await attachment_upstream.load(turn_ids) if turn_ids else {}
        self.files_loaded = True

    def _request(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        api = Api(self.api)
        request = Request(
            api=api,
            model=self.model,
            history=conversation.history(
                self.path,
                self.user_text,
                self.files,
                self.files.get(self.turn_id, ()) if self.turn_id is not None else (),
            ),
            parameters=parameters.request_parameters(self.params, api),
            tools=list(self.tools.values()),
            user=self.user_tag,
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

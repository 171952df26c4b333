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
    file_parts: bool = False  # documents as Chat "file" parts (the model list says it reads files)
    turn_id: int | None = None  # the turn these requests are for (its files go with it)
    file_turn_ids: list[int] | None = None  # turns with files (None: maybe any of them)
    # The files of the path's and this turn's user messages, by turn id: ``load_files``.
    files: dict[int, tuple[MessageFile, ...]] = field(default_factory=dict)
    files_read: set[int] = field(default_factory=set)  # turns whose files are in ``files``

    async def load_files(self, *, whole_history: bool | None = None) -> None:
        """Read the files the requests will send, off the event loop: the new message's, and
        the earlier messages' when the whole conversation is sent (Chat Completions, or no
        response to continue from; ``whole_history`` forces it: the full-history retry)."""
        if whole_history is None:
            parent = self.path[-1] if self.path else None
            whole_history = Api(self.api) != Api.RESPONSES or not conversation.continuation_id(
                parent
            )
        if self.file_turn_ids is None:  # not known: any turn may have some
            candidates = [turn.pk for turn in self.path] + [self.turn_id]
        else:
            candidates = self.file_turn_ids
        wanted = [
            pk
            for pk in candidates
            if pk is not None
            and pk not in self.files_read
            and (whole_history or pk == self.turn_id)
        ]
        if wanted:
            self.files |= await attachment_upstream.load(wanted)
            self.files_read.update(wanted)

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

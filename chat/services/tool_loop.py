"""One step of the tool-call loop: run the calls the model made, or ask the user to answer them.

A call's record (``ToolCallRecord``, kept in ``Turn.tool_calls``) is a plain dict, so it survives
a pause for the user's answer, a reload and a restart.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from django.utils.translation import gettext_lazy

from chat.services import tools
from chat.upstream import request


class ToolCallStatus(StrEnum):
    """``streaming`` → ``done`` | ``error`` | ``awaiting`` (the user answers) | ``rejected``.
    MCP calls (chat/services/mcp/calls.py) also go ``awaiting`` (approval asked) → ``approved``
    → ``running`` → ``done`` | ``error``."""

    STREAMING = "streaming"
    DONE = "done"
    ERROR = "error"
    AWAITING = "awaiting"
    REJECTED = "rejected"
    APPROVED = "approved"
    RUNNING = "running"

    @property
    def label(self) -> str:
        """What a tool card says about the call."""
        return _STATUS_LABELS[self]


# Lazy: shown on the tool cards, in the reader's language.
_STATUS_LABELS = {
    ToolCallStatus.STREAMING: gettext_lazy("calling…"),
    ToolCallStatus.DONE: gettext_lazy("done"),
    ToolCallStatus.ERROR: gettext_lazy("error"),
    ToolCallStatus.AWAITING: gettext_lazy("waiting for your answer"),
    ToolCallStatus.REJECTED: gettext_lazy("rejected"),
    ToolCallStatus.APPROVED: gettext_lazy("running…"),
    ToolCallStatus.RUNNING: gettext_lazy("running…"),
}


class ToolCallRecord(TypedDict):
    """One call the model made, as ``Turn.tool_calls`` stores it (JSON)."""

    step: int  # the upstream request of the turn that made it, from 1
    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it
    status: str  # a ToolCallStatus
    result: str


ToolResult = request.ToolResult


@dataclass(frozen=True)
class ToolSpec(request.ToolSpec):
    """A tool offered to the model in this turn, as the runner needs it (no ORM): what the
    upstream is told, and the built-in that runs it (none: the user answers)."""

    builtin: str = ""
    mcp_tool: int | None = None  # an McpTool id: run by its MCP server (chat/services/mcp)


# Checking a model's arguments against a schema, and running a built-in, is CPU work: it runs
# here, never on the event loop, so one tool call cannot stall every socket of the worker.
# A pool of its own: a burst of slow checks waits for these threads, not for the loop's
# default executor (which also resolves host names for upstream connections).
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tool-calls")


def outcome(name: str, arguments_text: str, offered: dict[str, ToolSpec]) -> tuple[str, str]:
    """What becomes of one call: (status, result). Runs in a worker thread."""
    spec = offered.get(name)
    if spec is None:
        return ToolCallStatus.ERROR, f"Error: there is no tool named {name!r}."
    arguments, problem = tools.check_arguments(spec.parameters, arguments_text)
    if problem is not None:
        # Bad arguments go back to the model as the result, so it can correct itself.
        return ToolCallStatus.ERROR, problem
    if spec.builtin:
        return ToolCallStatus.DONE, tools.run_builtin(spec.builtin, arguments or {})
    return ToolCallStatus.AWAITING, ""


async def execute(calls: list[ToolCallRecord], offered: dict[str, ToolSpec]) -> bool:
    """Fill in results for the calls of one step. True when every call has a result now;
    False when some wait for the user (tools with no built-in implementation)."""
    loop = asyncio.get_running_loop()
    # The calls themselves are only read there and updated here, on the loop, where snapshots
    # of the turn read them: a viewer never sees a call half updated.
    pending = [(call["name"], call["arguments"]) for call in calls]
    outcomes = await loop.run_in_executor(
        _POOL,
        lambda: [outcome(name, text, offered) for name, text in pending],
    )
    for call, (status, result) in zip(calls, outcomes, strict=True):
        call["status"], call["result"] = status, result
    return all(call["status"] != ToolCallStatus.AWAITING for call in calls)


def answer(call: ToolCallRecord, result: str | None) -> None:
    """The user's answer to a call: its result, or ``None`` to reject the call."""
    if result is None:
        call["status"], call["result"] = (
            ToolCallStatus.REJECTED,
            "The user declined to run this tool.",
        )
    else:
        call["status"], call["result"] = ToolCallStatus.DONE, result


def last_step(calls: list[ToolCallRecord]) -> list[ToolCallRecord]:
    if not calls:
        return []
    step = calls[-1]["step"]
    return [call for call in calls if call["step"] == step]


def results_by_step(calls: list[ToolCallRecord]) -> list[list[ToolResult]]:
    """Every step's calls with their results, oldest step first, for the next request."""
    steps: dict[int, list[ToolResult]] = {}
    for call in calls:
        result = ToolResult(
            call["call_id"],
            call["name"],
            call["arguments"],
            call["result"],
            tuple(request.ToolImage(i["mime"], i["data"]) for i in call.get("images", ())),
        )
        steps.setdefault(call["step"], []).append(result)
    return [steps[step] for step in sorted(steps)]

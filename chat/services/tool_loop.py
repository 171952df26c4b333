"""One step of the tool-call loop: run the calls the model made, or ask the user to answer them.

A call's record (kept in ``Turn.tool_calls``) is a plain dict, so it survives a pause for the
user's answer, a reload and a restart: ``{step, call_id, name, arguments, status, result}`` with
status ``streaming`` → ``done`` | ``error`` | ``awaiting`` (the user answers) | ``rejected``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chat.services import tools
from chat.services.mcp.results import responses_output as mcp_output


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model in this turn, as the runner needs it (no ORM)."""

    name: str
    description: str
    parameters: dict[str, Any]
    builtin: str = ""
    mcp_tool: int | None = None  # an McpTool id: run by its MCP server (chat/services/mcp)


# Checking a model's arguments against a schema, and running a built-in, is CPU work: it runs
# here, never on the event loop, so one tool call cannot stall every socket of the worker.
# A pool of its own: a burst of slow checks waits for these threads, not for the loop's
# default executor (which also resolves host names for upstream connections).
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tool-calls")


def outcome(call: dict[str, Any], offered: dict[str, ToolSpec]) -> tuple[str, str]:
    """What becomes of one call: (status, result). Runs in a worker thread."""
    spec = offered.get(call["name"])
    if spec is None:
        return "error", f"Error: there is no tool named {call['name']!r}."
    arguments, problem = tools.check_arguments(spec.parameters, call["arguments"])
    if problem is not None:
        # Bad arguments go back to the model as the result, so it can correct itself.
        return "error", problem
    if spec.builtin:
        return "done", tools.run_builtin(spec.builtin, arguments or {})
    return "awaiting", ""


async def execute(calls: list[dict[str, Any]], offered: dict[str, ToolSpec]) -> bool:
    """Fill in results for the calls of one step. True when every call has a result now;
    False when some wait for the user (tools with no built-in implementation)."""
    loop = asyncio.get_running_loop()
    # The calls themselves are only read there and updated here, on the loop, where snapshots
    # of the turn read them: a viewer never sees a call half updated.
    pending = [(call["name"], call["arguments"]) for call in calls]
    outcomes = await loop.run_in_executor(
        _POOL,
        lambda: [outcome({"name": name, "arguments": text}, offered) for name, text in pending],
    )
    for call, (status, result) in zip(calls, outcomes, strict=True):
        call["status"], call["result"] = status, result
    return all(call["status"] != "awaiting" for call in calls)


def answer(call: dict[str, Any], result: str | None) -> None:
    """The user's answer to a call: its result, or ``None`` to reject the call."""
    if result is None:
        call["status"], call["result"] = "rejected", "The user declined to run this tool."
    else:
        call["status"], call["result"] = "done", result


def last_step(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not calls:
        return []
    step = calls[-1]["step"]
    return [call for call in calls if call["step"] == step]


def responses_outputs(calls: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Responses API input items that hand the results back (with ``previous_response_id``)."""
    return [
        {"type": "function_call_output", "call_id": call["call_id"], "output": mcp_output(call)}
        for call in calls
    ]


def chat_messages(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions messages for every step so far: the assistant's calls, then results."""
    messages: list[dict[str, Any]] = []
    steps = sorted({call["step"] for call in calls})
    for step in steps:
        in_step = [call for call in calls if call["step"] == step]
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["call_id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for call in in_step
                ],
            }
        )
        messages.extend(
            {"role": "tool", "tool_call_id": call["call_id"], "content": call["result"]}
            for call in in_step
        )
    return messages

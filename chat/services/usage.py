"""Token accounting and limits. Called by generation before a turn starts and when it ends."""

from __future__ import annotations

from chat.models import Turn


def check_allowed(user, provider, model: str) -> None:
    """Raise ``conversation.TurnRejected`` with a clear message when ``user`` may not send now
    (quota or rate limit). Runs inside the transaction that creates the turn."""


def record_turn(turn: Turn) -> None:
    """Account a finished turn's usage, whatever its status (stopped turns used tokens too)."""

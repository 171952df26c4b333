"""How a "compare models" send shows on the thread page: while its turns end the visible path,
they are drawn side by side (templates/chat/compare.html), each with its cost. The turns
themselves are started by chat/services/compare.py."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from django.db.models import Sum
from django.template.loader import render_to_string

from chat.models import Thread, Turn, UsageRecord
from chat.services.conversation import ThreadTree


def costs(turn_ids: list[int]) -> dict[int, Decimal]:
    """What each turn cost, by turn id (from the usage records; none while it runs)."""
    rows = (
        UsageRecord.objects.filter(turn_id__in=turn_ids)
        .values("turn_id")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    return {row["turn_id"]: row["cost"] for row in rows}


def attach_columns(
    thread: Thread,
    tree: ThreadTree,
    items: list[dict],
    snapshots: dict[int, dict],
    turn_context: Callable[..., dict],
) -> None:
    """When the last turn of the page ends the path and belongs to a comparison, give it the
    group's columns (``compare``): each sibling of the group, live when it runs."""
    if not items:
        return
    leaf: Turn = items[-1]["turn"]
    if not leaf.compare_group or leaf.pk != thread.current_turn_id:
        return
    group = [
        turn
        for turn in tree.children.get(leaf.parent_id, [])
        if turn.compare_group == leaf.compare_group
    ]
    spent = costs([turn.pk for turn in group])
    items[-1]["compare"] = [
        turn_context(turn, snapshots.get(turn.pk), tree.siblings(turn))
        | {"cost": spent.get(turn.pk), "chosen": turn.pk == leaf.pk}
        for turn in group
    ]


def cost_update(turn: Turn) -> str:
    """The cost cell of a comparison column whose turn just ended, swapped in out of band
    ("" for a turn outside any comparison)."""
    if not turn.compare_group:
        return ""
    context = {"turn": turn, "cost": costs([turn.pk]).get(turn.pk), "oob": True}
    return render_to_string("chat/compare.html#cost", context)

"""The line under each message (issue 18, item 8): an answer's estimated cost, in the site's
currency (``COST_CURRENCY``) and the reader's number format. Its time is rendered by
``templates/chat/message_meta.html`` with Django's ``naturaltime`` and ``date`` filters."""

from __future__ import annotations

from decimal import Decimal

from django import template

from chat.services import quotas

register = template.Library()

# Costs are stored to 6 places (``usage.COST_PLACES``).
_MOST_PLACES = 6


def cost_places(amount: Decimal) -> int:
    """Decimal places that show two significant digits of a small amount (one answer often
    costs a fraction of a cent), at least 2 (cents) and at most the 6 stored."""
    if amount <= 0:
        return 2
    return max(2, min(_MOST_PLACES, 1 - amount.adjusted()))


@register.filter
def money(amount: Decimal | int | float | None) -> str:
    """``amount`` in the site's currency, with the active language's separators."""
    if amount is None:
        return ""
    value = Decimal(str(amount))
    return quotas.money(value, cost_places(value))

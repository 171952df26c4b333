"""Banners staff post (admin → Announcements) for every signed-in user.

Every page renders the current ones (``templates/chat/announcements.html`` from base.html);
every open thread socket is in the ``announcements`` channel-layer group, and a saved or
deleted banner tells that group, so each socket re-renders the banners for its user at once.
A user's "Dismiss" is stored, so it holds on every page and device.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from chat.channel_layer import ChannelLayerUnavailable
from chat.models import Announcement

log = logging.getLogger(__name__)

GROUP = "announcements"
CHANGED = "announcements.changed"  # the consumer's handler: ``announcements_changed``
_OPENING = '<div id="announcements"'


def active_for(user) -> QuerySet[Announcement]:
    """The banners shown to ``user`` now: started, not ended, not dismissed by them."""
    now = timezone.now()
    return (
        Announcement.objects.filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .exclude(dismissed_by=user)
        .order_by("-created_at", "-pk")
    )


def dismiss(user, announcement_id: int) -> bool:
    """Hide a banner from ``user`` for good; False when there is no such banner."""
    announcement = Announcement.objects.filter(pk=announcement_id).first()
    if announcement is None:
        return False
    announcement.dismissed_by.add(user)
    return True


def render_for(user, *, request=None, swap_oob: bool = False) -> str:
    """The banner area as HTML (``swap_oob``: for a socket, replacing the page's own)."""
    html = render_to_string(
        "chat/announcements.html",
        {"announcements": list(active_for(user)), "user": user},
        request=request,
    )
    if swap_oob:
        html = html.replace(_OPENING, '<div hx-swap-oob="true" id="announcements"', 1)
    return html


def broadcast() -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": CHANGED})
    except ChannelLayerUnavailable:  # saved all the same: pages show it at their next load
        log.warning("could not tell open pages about an announcement change (Redis down)")


def broadcast_after_commit() -> None:
    transaction.on_commit(broadcast)


async def join(channel_layer, channel_name: str) -> None:
    """A socket opened: it hears of every banner change (consumer ``connect``)."""
    await channel_layer.group_add(GROUP, channel_name)


async def leave(channel_layer, channel_name: str) -> None:
    """A socket closed (consumer ``disconnect``)."""
    await channel_layer.group_discard(GROUP, channel_name)

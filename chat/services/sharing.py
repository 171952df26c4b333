"""Sharing a thread with a team or a named user. Every change of who may see a thread is
announced to its open sockets (``access.changed``), which re-check at once: a revoked viewer's
socket closes, a downgraded one loses its writing controls."""

from __future__ import annotations

from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from chat.models import Access, Team, Thread, ThreadShare


class ShareRefused(Exception):
    """A share that cannot be made; the text is shown to the owner."""


def teams_for(user: AbstractBaseUser) -> QuerySet[Team]:
    """Teams a thread owner may share with: their own (staff: every team)."""
    return Team.objects.all() if user.is_staff else Team.objects.filter(members=user)


def shares_of(thread: Thread) -> list[ThreadShare]:
    return list(thread.shares.select_related("team", "user"))


def share(
    thread: Thread, *, access: str, team_id: int | None = None, username: str = ""
) -> ThreadShare:
    """Share with one team or one user; sharing again with the same one changes its access."""
    if access not in Access.values:
        raise ShareRefused(_("Choose read only or collaborate."))
    if (team_id is None) == (not username):
        raise ShareRefused(_("Choose a team or type a username."))
    target: dict
    if team_id is not None:
        team = teams_for(thread.owner).filter(pk=team_id).first()
        if team is None:
            raise ShareRefused(_("You can only share with a team you belong to."))
        target = {"team": team}
    else:
        user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
        if user is None:
            raise ShareRefused(
                _("There is no user called “%(username)s”.") % {"username": username.strip()}
            )
        if user.pk == thread.owner_id:
            raise ShareRefused(_("This is your own chat."))
        target = {"user": user}
    try:
        with transaction.atomic():
            shared, _created = ThreadShare.objects.update_or_create(
                thread=thread, **target, defaults={"access": access}
            )
    except IntegrityError as exc:  # two owners' tabs sharing at once
        raise ShareRefused(_("That share changed meanwhile; try again.")) from exc
    return shared


def change_access(thread: Thread, share_id: int, access: str) -> bool:
    if access not in Access.values:
        raise ShareRefused(_("Choose read only or collaborate."))
    share_row = thread.shares.filter(pk=share_id).first()
    if share_row is None:
        return False
    share_row.access = access
    share_row.save(update_fields=["access"])
    return True


def revoke(thread: Thread, share_id: int) -> bool:
    share_row = thread.shares.filter(pk=share_id).first()
    if share_row is None:
        return False
    share_row.delete()  # the post_delete signal tells the open sockets
    return True


def announce_access_changed(thread_ids: Iterable[int]) -> None:
    """Tell every open socket of these threads, on every worker, to re-check its access."""
    from chat import live

    publish = async_to_sync(live.publish)
    layer = get_channel_layer()
    for thread_id in set(thread_ids):
        publish(thread_id, live.AccessChanged(type="access.changed"), layer=layer)


def announce_after_commit(thread_ids: Iterable[int]) -> None:
    ids = list(thread_ids)
    if ids:
        transaction.on_commit(lambda: announce_access_changed(ids))


def threads_shared_with_teams(team_ids: Iterable[int]) -> list[int]:
    return list(
        ThreadShare.objects.filter(team_id__in=list(team_ids)).values_list("thread_id", flat=True)
    )

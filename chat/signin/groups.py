"""Organisation groups → Switchboard teams and the staff role, at every sign-in.

Only teams with ``Team.external_group`` set are managed here: the person joins those whose group
they are in and leaves the others. Teams without it (staff add members by hand) are never
touched. Changing ``Team.members`` announces the change to open sockets (``chat/signals.py``),
so someone removed from a group loses the team's shared threads at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from chat.models import Team


def _key(group: str) -> str:
    # LDAP and AD compare group names without case; so does this.
    return group.strip().casefold()


def in_any(groups: Iterable[str], wanted: Iterable[str]) -> bool:
    wanted_keys = {_key(group) for group in wanted}
    return any(_key(group) in wanted_keys for group in groups)


def _ensure_mapped_teams(groups: list[str]) -> None:
    """Teams for the groups: from ``GROUP_TEAM_MAP`` (created, or bound to their group), else
    named after the group when ``GROUP_TEAMS_CREATE`` is on. Teams bound in the admin exist."""
    mapping = {_key(group): team for group, team in settings.GROUP_TEAM_MAP.items()}
    bound = {
        _key(group)
        for group in Team.objects.exclude(external_group="").values_list(
            "external_group", flat=True
        )
    }
    for group in groups:
        key = _key(group)
        if key in bound:
            continue
        name = mapping.get(key) or (group.strip()[:100] if settings.GROUP_TEAMS_CREATE else "")
        if not name:
            continue
        team, _ = Team.objects.get_or_create(name=name)
        if not team.external_group:
            team.external_group = group.strip()
            team.save(update_fields=["external_group"])
        bound.add(key)


@transaction.atomic
def sync_teams(user, groups: Iterable[str]) -> tuple[list[str], list[str]]:
    """Join the managed teams of ``groups``, leave the other managed teams. Returns the names
    of the teams joined and left."""
    groups = [group for group in groups if group and group.strip()]
    _ensure_mapped_teams(groups)
    keys = {_key(group) for group in groups}
    managed = list(Team.objects.exclude(external_group=""))
    wanted = {team.pk for team in managed if _key(team.external_group) in keys}
    current = set(
        user.teams.filter(pk__in=[team.pk for team in managed]).values_list("pk", flat=True)
    )
    join, leave = wanted - current, current - wanted
    if join:
        user.teams.add(*join)
    if leave:
        user.teams.remove(*leave)
    names = {team.pk: team.name for team in managed}
    return sorted(names[pk] for pk in join), sorted(names[pk] for pk in leave)


def sync_staff(user, groups: Iterable[str], admin_groups: list[str]) -> bool:
    """With admin groups configured, the staff role follows them (both ways); without, it is
    left as staff set it. Returns whether the role changed."""
    if not admin_groups:
        return False
    admin = in_any(groups, admin_groups)
    if user.is_staff == admin and user.is_superuser == admin:
        return False
    user.is_staff = user.is_superuser = admin
    user.save(update_fields=["is_staff", "is_superuser"])
    return True

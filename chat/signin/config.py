"""Parsing of the sign-in settings' values (no models: ``project.settings`` imports this)."""

from __future__ import annotations


def parse_group_team_map(text: str) -> dict[str, str]:
    """``"ldap-group=Team Name; other=Other"`` → ``{"ldap-group": "Team Name", …}``."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(";"):
        group, equals, team = part.partition("=")
        if not part.strip():
            continue
        if not equals or not group.strip() or not team.strip():
            raise ValueError(f"GROUP_TEAM_MAP entry {part.strip()!r} is not group=Team name")
        mapping[group.strip()] = team.strip()
    return mapping


def parse_group_list(text: str) -> list[str]:
    """``"admins, ops"`` or ``"admins;ops"`` → ``["admins", "ops"]``."""
    return [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]

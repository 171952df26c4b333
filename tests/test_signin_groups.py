"""Organisation groups → teams and staff, whatever the sign-in method."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chat.models import Team
from chat.signin.config import parse_group_team_map
from chat.signin.groups import sync_staff, sync_teams


def test_group_team_map_parses_and_rejects_nonsense():
    assert parse_group_team_map(" research = R&D ; ops=Operations; ") == {
        "research": "R&D",
        "ops": "Operations",
    }
    with pytest.raises(ValueError, match="not group=Team name"):
        parse_group_team_map("research")


def test_a_bad_group_team_map_stops_the_start_with_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SWITCHBOARD_DATA_DIR": str(tmp_path),
            "STATIC_ROOT": str(tmp_path / "static"),
            "GROUP_TEAM_MAP": "research;x=Y",
            "DJANGO_SECRET_KEY": "a-test-key-that-is-long-enough-for-django-0123456789",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: GROUP_TEAM_MAP entry 'research' is not group=Team name" in (
        result.stderr
    )


def test_groups_match_teams_without_case_and_leave_only_managed_teams(make_user, settings):
    settings.GROUP_TEAMS_CREATE = False
    user = make_user("pat")
    managed = Team.objects.create(name="Engineering", external_group="CN-Engineering")
    other_managed = Team.objects.create(name="Ops", external_group="ops")
    manual = Team.objects.create(name="Book club")
    manual.members.add(user)
    other_managed.members.add(user)
    joined, left = sync_teams(user, ["cn-engineering", "unmapped"])
    assert (joined, left) == (["Engineering"], ["Ops"])
    assert sorted(team.name for team in user.teams.all()) == ["Book club", "Engineering"]
    assert not Team.objects.filter(name="unmapped").exists()
    assert managed.members.filter(pk=user.pk).exists()


def test_admin_groups_decide_staff_only_when_configured(make_user):
    user = make_user("pat", staff=True)
    assert not sync_staff(user, ["anything"], [])  # no admin groups: left as staff set it
    assert user.is_staff
    assert sync_staff(user, ["users"], ["admins"])
    assert not user.is_staff and not user.is_superuser

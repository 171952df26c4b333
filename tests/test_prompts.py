"""The prompt library (issue 19): variables, filling them in, who may use and who may change
a prompt, and a preset that starts with one."""

from __future__ import annotations

import pytest
from django.test import Client

from chat.models import Preset, Prompt, Team
from chat.services import prompts

pytestmark = pytest.mark.django_db


def test_variables_are_typed_and_asked_for_once():
    text = (
        "Write to {{who}} about {{topic}} in {{tone|choice:formal, casual}} by {{day|date}}; "
        "{{who}}."
    )
    found = prompts.variables_of(text)
    assert [(v.name, v.kind, v.options) for v in found] == [
        ("who", "text", []),
        ("topic", "text", []),
        ("tone", "choice", ["formal", "casual"]),
        ("day", "date", []),
    ]
    filled = prompts.fill(
        text, {"who": "Ann", "topic": "the launch", "tone": "casual", "day": "2026-12-24"}
    )
    assert filled == "Write to Ann about the launch in casual by 2026-12-24; Ann."


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tone": "formal", "day": "2026-01-01"}, "Fill in “who”"),
        ({"who": "x", "tone": "rude", "day": "2026-01-01"}, "Choose one of the options"),
        ({"who": "x", "tone": "formal", "day": "next week"}, "must be a date"),
    ],
)
def test_bad_values_are_refused_with_the_reason(values, message):
    with pytest.raises(prompts.PromptError, match=message):
        prompts.fill("{{who}} {{tone|choice:formal,casual}} {{day|date}}", values)


def test_a_choice_without_options_is_refused_when_saved(user):
    with pytest.raises(prompts.PromptError, match="needs options"):
        prompts.save_prompt(user, None, "Bad", "Pick {{x|choice:}}", None)
    assert not Prompt.objects.exists()


@pytest.fixture
def team(user, make_user):
    team = Team.objects.create(name="Research")
    team.members.add(user, make_user("bob"))
    return team


def client_of(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def test_team_members_use_a_shared_prompt_but_only_its_owner_changes_it(
    user, other_user, team, django_user_model
):
    bob = django_user_model.objects.get(username="bob")
    prompt = Prompt.objects.create(owner=user, team=team, name="Brief", text="Brief on {{topic}}")
    personal = Prompt.objects.create(owner=user, name="Mine", text="Only mine")

    as_bob = client_of(bob)
    menu = as_bob.get("/prompts/menu/").json()["prompts"]
    assert [p["name"] for p in menu] == ["Brief"]  # not the personal one
    assert as_bob.post(f"/prompts/{prompt.pk}/use/", {"topic": "RAG"}).json() == {
        "text": "Brief on RAG"
    }
    assert as_bob.get(f"/prompts/{personal.pk}/use/").status_code == 404
    # Bob cannot edit or delete it: 404, nothing changed.
    assert as_bob.get(f"/prompts/{prompt.pk}/").status_code == 404
    assert as_bob.post(f"/prompts/{prompt.pk}/save/", {"name": "X", "text": "y"}).status_code == 404
    assert as_bob.post(f"/prompts/{prompt.pk}/delete/").status_code == 404
    assert Prompt.objects.get(pk=prompt.pk).text == "Brief on {{topic}}"

    # Someone outside the team sees neither.
    as_mallory = client_of(other_user)
    assert as_mallory.get("/prompts/menu/").json() == {"prompts": []}
    assert as_mallory.get(f"/prompts/{prompt.pk}/use/").status_code == 404

    # The owner edits and deletes.
    as_owner = client_of(user)
    as_owner.post(f"/prompts/{prompt.pk}/save/", {"name": "Brief", "text": "Now {{x}}"})
    assert Prompt.objects.get(pk=prompt.pk).text == "Now {{x}}"
    as_owner.post(f"/prompts/{prompt.pk}/delete/")
    assert not Prompt.objects.filter(pk=prompt.pk).exists()


def test_sharing_with_a_team_one_is_not_in_is_refused(user, other_user):
    outsiders = Team.objects.create(name="Elsewhere")
    outsiders.members.add(other_user)
    response = client_of(user).post(
        "/prompts/new/", {"name": "Leak", "text": "hi", "team": outsiders.pk}
    )
    assert "only share with a team you belong to" in response.content.decode()
    assert not Prompt.objects.exists()


def test_the_menu_filters_by_what_follows_the_slash(user):
    for name in ("Summary", "Translate", "Sum up code"):
        Prompt.objects.create(owner=user, name=name, text=name)
    menu = client_of(user).get("/prompts/menu/", {"q": "sum"}).json()["prompts"]
    assert [p["name"] for p in menu] == ["Sum up code", "Summary"]


def test_a_missing_variable_is_reported_not_inserted(user):
    prompt = Prompt.objects.create(owner=user, name="P", text="On {{day|date}}")
    response = client_of(user).post(f"/prompts/{prompt.pk}/use/", {"day": ""})
    assert response.status_code == 400
    assert response.json() == {"error": "Fill in “day”."}


def test_a_preset_names_a_prompt_to_start_with(user, make_thread):
    prompt = Prompt.objects.create(owner=user, name="Kickoff", text="Kick off {{project}}")
    thread = make_thread(user)
    browser = client_of(user)
    browser.post(f"/t/{thread.pk}/preset/", {"preset_name": "Planning", "start_prompt": prompt.pk})
    preset = Preset.objects.get(owner=user, name="Planning")
    assert preset.start_prompt == prompt
    page = browser.get("/").content.decode()
    assert f'data-start-prompt="{prompt.pk}"' in page

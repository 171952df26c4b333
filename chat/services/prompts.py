"""The prompt library: which prompts a user may use or change, their variables, filling them in.

A variable is written in the prompt's text as ``{{name}}`` (free text), ``{{name|date}}`` (a
date) or ``{{name|choice:first,second}}`` (one of the options). The same name used twice is
asked for once.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from chat.models import Prompt, Team
from chat.request_ids import parse_id

VARIABLE = re.compile(
    r"\{\{\s*([A-Za-z_][\w\- ]{0,40}?)\s*(?:\|\s*(text|date|choice)\s*(?::([^}]*))?)?\}\}"
)
MAX_OPTIONS = 50


class PromptError(ValueError):
    """A prompt's text or a variable's value that cannot be used; the message says why."""


@dataclass
class Variable:
    name: str
    kind: str = "text"  # text, date or choice
    options: list[str] = field(default_factory=list)


def variables_of(text: str) -> list[Variable]:
    """The variables of a prompt's text, in order of first appearance. Raises PromptError for
    a choice without options or one variable declared with two different types."""
    found: dict[str, Variable] = {}
    for match in VARIABLE.finditer(text):
        name, kind, options = match.group(1).strip(), match.group(2) or "text", match.group(3)
        variable = Variable(name, kind)
        if kind == "choice":
            variable.options = [o.strip() for o in (options or "").split(",") if o.strip()]
            if not variable.options:
                raise PromptError(
                    _("The choice “%(name)s” needs options: {{%(name)s|choice:a,b}}.")
                    % {"name": name}
                )
            if len(variable.options) > MAX_OPTIONS:
                raise PromptError(
                    _("The choice “%(name)s” has more than %(limit)s options.")
                    % {"name": name, "limit": MAX_OPTIONS}
                )
        earlier = found.get(name)
        if earlier is None:
            found[name] = variable
        elif kind != "text" and (earlier.kind, earlier.options) != (kind, variable.options):
            if earlier.kind != "text":
                raise PromptError(
                    _("The variable “%(name)s” is declared twice, differently.") % {"name": name}
                )
            found[name] = variable  # {{x}} then {{x|date}}: the typed mention wins
    return list(found.values())


def fill(text: str, values: dict[str, str]) -> str:
    """The prompt's text with every variable replaced by its value. Raises PromptError for a
    missing value, a date that is not YYYY-MM-DD or a choice that is not one of the options."""
    checked: dict[str, str] = {}
    for variable in variables_of(text):
        value = str(values.get(variable.name, "")).strip()
        if not value:
            raise PromptError(_("Fill in “%(name)s”.") % {"name": variable.name})
        if variable.kind == "date":
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise PromptError(
                    _("“%(name)s” must be a date (YYYY-MM-DD).") % {"name": variable.name}
                ) from None
        if variable.kind == "choice" and value not in variable.options:
            raise PromptError(
                _("Choose one of the options for “%(name)s”.") % {"name": variable.name}
            )
        checked[variable.name] = value
    return VARIABLE.sub(lambda match: checked[match.group(1).strip()], text)


def usable_prompts(user: AbstractBaseUser) -> QuerySet[Prompt]:
    """The user's own prompts and those shared with a team they belong to."""
    return (
        Prompt.objects.filter(Q(owner=user) | Q(team__members=user))
        .distinct()
        .select_related("owner", "team")
    )


def usable_prompt(user: AbstractBaseUser, prompt_id: int) -> Prompt | None:
    return usable_prompts(user).filter(pk=prompt_id).first()


def own_prompt(user: AbstractBaseUser, prompt_id: int) -> Prompt | None:
    """A prompt the user may change: only its owner's (team members only use it)."""
    return Prompt.objects.filter(owner=user, pk=prompt_id).first()


def teams_of(user: AbstractBaseUser) -> QuerySet[Team]:
    return Team.objects.filter(members=user)


def save_prompt(
    user: AbstractBaseUser, prompt: Prompt | None, name: str, text: str, team_id: int | None
) -> Prompt:
    """Create or change one of the user's prompts. Raises PromptError (nothing is saved)."""
    name, text = name.strip(), text.strip()
    if not name or not text:
        raise PromptError(_("A prompt needs a name and a text."))
    if len(name) > 100:
        raise PromptError(_("The name is too long (100 characters at most)."))
    variables_of(text)
    team = None
    if team_id is not None:
        team = teams_of(user).filter(pk=team_id).first()
        if team is None:
            raise PromptError(_("You can only share with a team you belong to."))
    duplicate = Prompt.objects.filter(owner=user, name=name)
    if prompt is not None:
        duplicate = duplicate.exclude(pk=prompt.pk)
    if duplicate.exists():
        raise PromptError(_("You already have a prompt named “%(name)s”.") % {"name": name})
    prompt = prompt or Prompt(owner=user)
    prompt.name, prompt.text, prompt.team = name, text, team
    prompt.save()
    return prompt


def start_prompt(user: AbstractBaseUser, form: dict) -> Prompt | None:
    """The prompt a preset's form names to start with (``start_prompt``), if the user may use
    it; anything else: none."""
    prompt_id = parse_id(form.get("start_prompt", ""))
    return usable_prompt(user, prompt_id) if prompt_id is not None else None

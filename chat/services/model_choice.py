"""The model picker a user gets: only the models they may use, starting on their team's default
model, else the organisation's, else the first in the list."""

from __future__ import annotations

from chat.models import ModelSetting, SiteSettings, Team
from chat.services import budgets, model_access


def _choice(setting_id: int | None) -> str:
    if setting_id is None:
        return ""
    row = ModelSetting.objects.filter(pk=setting_id).values_list("provider_id", "model").first()
    return f"{row[0]}:{row[1]}" if row else ""


def default_choices(user) -> list[str]:
    """``"<provider id>:<model>"`` of the billing team's and the organisation's default model,
    in that order (either may be missing)."""
    choices = []
    team_id = budgets.billing_team_id(user.pk)
    if team_id is not None:
        choices.append(
            _choice(Team.objects.filter(pk=team_id).values_list("default_model", flat=True).first())
        )
    site = SiteSettings.objects.filter(pk=1).values_list("default_model", flat=True).first()
    choices.append(_choice(site))
    return [choice for choice in choices if choice]


def picker(user, groups: list, selected: str) -> tuple[list, str]:
    """The groups ``user`` may pick from and the option to select: ``selected`` when it is one
    of them, else the team's or organisation's default, else the first."""
    groups = model_access.filter_models(user, groups)
    available = [f"{group.provider_id}:{model}" for group in groups for model in group.models]
    if selected not in available and available:
        defaults = [choice for choice in default_choices(user) if choice in available]
        selected = (defaults or available)[0]
    return groups, selected

"""Who may use which model: staff restrict a provider, or one model of it, to teams and named
users (``allowed_teams`` / ``allowed_users`` on Provider and ModelSetting; both empty:
everyone). A user may use a model when both its provider's rule and the model's rule let them.

:func:`may_use_model` is the one check every entry point calls (new chat page, the thread's
model pick, every turn started over the socket, and any future API); :func:`filter_models`
trims the model picker. Both read every rule in one query: the rule tables are small."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from django.db import connection
from django.utils.translation import gettext as _

from chat.models import ModelSetting, Provider, Team


class ModelNotAllowed(Exception):
    """The user may not use this model; the message says so in words fit for the chat."""


def refusal(model: str) -> str:
    return _(
        "You do not have access to the model “%(model)s”. "
        "Ask an administrator for access or pick another model."
    ) % {"model": model}


@dataclass
class _Rule:
    teams: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)

    def allows(self, user_id: int, team_ids: set[int]) -> bool:
        return user_id in self.users or bool(self.teams & team_ids)


@dataclass
class AccessRules:
    """Every restriction, and the teams of the user they are checked for."""

    user_id: int
    team_ids: set[int]
    providers: dict[int, _Rule]
    models: dict[tuple[int, str], _Rule]

    def allows_provider(self, provider_id: int) -> bool:
        rule = self.providers.get(provider_id)
        return rule is None or rule.allows(self.user_id, self.team_ids)

    def allows(self, provider_id: int, model: str) -> bool:
        for rule in (self.providers.get(provider_id), self.models.get((provider_id, model))):
            if rule is not None and not rule.allows(self.user_id, self.team_ids):
                return False
        return True


def _sql() -> str:
    """One UNION over the four rule tables and the user's team memberships."""
    p_teams = Provider.allowed_teams.through._meta.db_table
    p_users = Provider.allowed_users.through._meta.db_table
    m_teams = ModelSetting.allowed_teams.through._meta.db_table
    m_users = ModelSetting.allowed_users.through._meta.db_table
    settings_table = ModelSetting._meta.db_table
    members = Team.members.through._meta.db_table
    return (
        f"SELECT 'pt', provider_id, '', team_id FROM {p_teams} "
        f"UNION ALL SELECT 'pu', provider_id, '', user_id FROM {p_users} "
        f"UNION ALL SELECT 'mt', s.provider_id, s.model, r.team_id FROM {m_teams} r "
        f"JOIN {settings_table} s ON s.id = r.modelsetting_id "
        f"UNION ALL SELECT 'mu', s.provider_id, s.model, r.user_id FROM {m_users} r "
        f"JOIN {settings_table} s ON s.id = r.modelsetting_id "
        f"UNION ALL SELECT 'me', 0, '', team_id FROM {members} WHERE user_id = %s"
    )


_SQL: str | None = None


def rules_for(user) -> AccessRules:
    global _SQL
    _SQL = _SQL or _sql()
    rules = AccessRules(user.pk, set(), {}, {})
    with connection.cursor() as cursor:
        cursor.execute(_SQL, [user.pk])
        rows = cursor.fetchall()
    for kind, provider_id, model, member in rows:
        if kind == "me":
            rules.team_ids.add(member)
            continue
        rule = (
            rules.providers.setdefault(provider_id, _Rule())
            if kind[0] == "p"
            else rules.models.setdefault((provider_id, model), _Rule())
        )
        (rule.teams if kind[1] == "t" else rule.users).add(member)
    return rules


def may_use_model(user, provider: Provider | int, model: str) -> bool:
    """Whether ``user`` may send to ``model`` of ``provider`` (staff included: an admin who
    restricts a model to a team restricts it for themselves too, as they would expect from
    a rule that names who may use it)."""
    provider_id = provider if isinstance(provider, int) else provider.pk
    return rules_for(user).allows(provider_id, model)


def require_model(user, provider: Provider | int, model: str) -> None:
    """Raise :class:`ModelNotAllowed` when ``user`` may not use the model."""
    if not may_use_model(user, provider, model):
        raise ModelNotAllowed(refusal(model))


def refusal_for_thread(user, thread) -> str:
    """Why ``user`` cannot send in ``thread`` because of its model (empty: they can)."""
    if thread.provider_id is None or not thread.model:
        return ""
    return "" if may_use_model(user, thread.provider_id, thread.model) else refusal(thread.model)


def filter_models(user, groups: list) -> list:
    """The model picker's groups (``providers.ProviderModels``) without what ``user`` may not
    use; a provider the user may not use at all disappears."""
    rules = rules_for(user)
    if not rules.providers and not rules.models:
        return groups
    kept = []
    for group in groups:
        if not rules.allows_provider(group.provider_id):
            continue
        models = tuple(m for m in group.models if rules.allows(group.provider_id, m))
        kept.append(replace(group, models=models))
    return kept

"""Compare models side by side: one message sent to 2 or 3 models at once.

Built on the turn tree: each model's answer is a sibling turn under the same parent, started as
a regenerate would be, but with its own model, and all marked with one ``compare_group``. The
thread allows one answer at a time; a comparison is the one exception, kept here: its turns are
checked and created together in one transaction (so nothing else can start between them), then
started together. The first becomes the visible path; "Continue with this answer" is the
existing branch switch. The page shows the group's turns in columns while they end the path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from chat import live
from chat.channel_layer import ChannelLayerUnavailable
from chat.models import Provider, Thread, Turn
from chat.services import conversation, permissions, usage
from chat.services.refusals import TurnRejected
from chat.services.turns import admission, registry
from chat.services.turns.planning import TurnPlan, create_turn, request_for
from chat.services.turns.runner import TurnRunner

MIN_MODELS = 2
MAX_MODELS = 3


def parse_choices(values: object) -> list[tuple[int, str]]:
    """``"<provider id>:<model>"`` values from the composer's compare picker, deduplicated in
    order. Raises TurnRejected unless there are 2 or 3 of them."""
    if values is None:
        values = []
    elif isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TurnRejected(_("That request was not understood."))
    choices: list[tuple[int, str]] = []
    for value in values:
        provider_id, _colon, model = value.partition(":")
        if not provider_id.isdigit() or not model or len(model) > 200:
            raise TurnRejected(_("That model is not available."))
        if (int(provider_id), model) not in choices:
            choices.append((int(provider_id), model))
    if not MIN_MODELS <= len(choices) <= MAX_MODELS:
        raise TurnRejected(
            _("Choose %(least)d or %(most)d models to compare.")
            % {"least": MIN_MODELS, "most": MAX_MODELS}
        )
    return choices


def _plan_comparison(
    user, thread_id: int, text: str, choices: list[tuple[int, str]]
) -> list[TurnPlan]:
    """Create one turn per model, siblings after the current turn, all or none."""
    with transaction.atomic():
        thread = permissions.writable_thread_for(user, thread_id)
        if thread is None:
            raise TurnRejected(_("This chat no longer exists."))
        text = conversation.validate_message(text, settings.MAX_MESSAGE_CHARS)
        tree = conversation.ThreadTree(thread)
        if any(turn.status in Turn.ACTIVE for turn in tree.turns.values()):
            raise TurnRejected(_("An answer is still being written. Stop it or wait."))
        providers = Provider.objects.in_bulk({pk for pk, _model in choices})
        path = tree.path(thread.current_turn_id) if thread.current_turn_id else []
        group = uuid.uuid4().hex
        plans = []
        for provider_id, model in choices:
            provider = providers.get(provider_id)
            if provider is None or not provider.enabled:
                raise TurnRejected(_("That model is not available."))
            defaults = usage.check_allowed(user, provider, model)
            turn = create_turn(
                thread,
                user,
                path=path,
                text=text,
                provider=provider,
                model=model,
                defaults=defaults,
                runner_channel=live.new_runner_channel(),
                compare_group=group,
            )
            tree.turns[turn.pk] = turn
            tree.children.setdefault(turn.parent_id, []).append(turn)
            request = request_for(turn, thread, path, user)
            plans.append(TurnPlan(turn=turn, provider=provider, request=request, linear=False))
        thread.current_turn = plans[0].turn
        if not path:
            thread.title = conversation.title_from(text)
        thread.save(update_fields=["current_turn", "title", "updated_at"])
        for plan in plans:
            plan.siblings = tree.siblings(plan.turn)
        return plans


async def start_comparison(user, thread_id: int, text: str, models: object) -> list[Turn]:
    """Send ``text`` to every model of ``models`` at once. Raises TurnRejected."""
    registry.refuse_while_shutting_down()
    admission.refuse_when_full()
    choices = parse_choices(models)
    plans = await database_sync_to_async(_plan_comparison)(user, thread_id, text, choices)
    return await _start_together(thread_id, plans)


async def start_new_comparison(
    user, create_thread: Callable[[], Thread], text: str, models: object
) -> list[Turn]:
    """The first message of a new chat, compared: ``create_thread()`` and the turns in one
    transaction (a refused comparison leaves no empty chat). Raises TurnRejected."""
    registry.refuse_while_shutting_down()
    admission.refuse_when_full()
    choices = parse_choices(models)

    def plan() -> list[TurnPlan]:
        with transaction.atomic():
            thread = create_thread()
            return _plan_comparison(user, thread.pk, text, choices)

    plans = await database_sync_to_async(plan)()
    return await _start_together(plans[0].turn.thread_id, plans)


async def _start_together(thread_id: int, plans: list[TurnPlan]) -> list[Turn]:
    registry.ensure_reaper()
    runners = [TurnRunner(plan) for plan in plans]
    for runner in runners:
        registry.add(runner)
        runner.announced.clear()  # nothing is published before the page has the columns
        runner.start()
    try:
        # One redraw of the path for every socket: the columns, each with its running turn.
        await live.publish(thread_id, live.PathChanged(type="path.changed"))
    except ChannelLayerUnavailable:  # the turns run; sockets catch up when Redis is back
        pass
    finally:
        for runner in runners:
            runner.announced.set()
    return [plan.turn for plan in plans]

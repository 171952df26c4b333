"""👍/👎 and an optional comment on answers: one per user per turn, changeable; staff read them
per model (rate of 👍, the latest with links to the turns they may see) and as CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from chat.models import Feedback, Turn
from chat.services import permissions
from chat.services.usage import _cell, _Echo

COMMENT_LENGTH = 2000
LATEST = 100
CSV_COLUMNS = ("time", "user", "rating", "comment", "model", "provider", "thread_id", "turn_id")


class Refused(ValueError):
    """Feedback that cannot be stored, with the reason to show."""


def can_rate(turn: Turn) -> bool:
    """Only an answer can be rated: a finished turn with text (a failed one has none)."""
    return turn.is_finished and bool(turn.output_text)


def give(user: AbstractBaseUser, turn: Turn, rating: str, comment: str | None) -> Feedback:
    """Store (or change) the user's feedback on ``turn``; ``comment`` None keeps the one given."""
    if rating not in Feedback.Rating.values:
        raise Refused(_("Choose 👍 or 👎."))
    if not can_rate(turn):
        raise Refused(_("Only a finished answer can be rated."))
    if comment is not None:
        comment = comment.strip()
        if len(comment) > COMMENT_LENGTH:
            raise Refused(
                _("A comment has at most %(limit)s characters.") % {"limit": COMMENT_LENGTH}
            )
    defaults = {"rating": rating, "model": turn.model}
    if comment is not None:
        defaults["comment"] = comment
    found, _created = Feedback.objects.update_or_create(turn=turn, user=user, defaults=defaults)
    return found


def of_turn(user: AbstractBaseUser, turn: Turn) -> Feedback | None:
    return Feedback.objects.filter(turn=turn, user=user).first()


def withdraw(user: AbstractBaseUser, turn: Turn) -> None:
    Feedback.objects.filter(turn=turn, user=user).delete()


def attach(user: AbstractBaseUser, items: Iterable[dict]) -> None:
    """Put the user's feedback on each page item (``{"turn": …}``) as ``item["feedback"]``."""
    items = list(items)
    if not user.is_authenticated or not items:
        return
    found = Feedback.objects.filter(user=user, turn_id__in=[item["turn"].pk for item in items])
    by_turn = {feedback.turn_id: feedback for feedback in found}
    for item in items:
        item["feedback"] = by_turn.get(item["turn"].pk)


@dataclass
class ModelFeedback:
    model: str
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def up_rate(self) -> float:
        return self.up / self.total if self.total else 0.0


def by_model() -> list[ModelFeedback]:
    """Every model that was rated, most rated first."""
    rows = (
        Feedback.objects.values("model")
        .annotate(
            up=Count("pk", filter=Q(rating=Feedback.Rating.UP)),
            down=Count("pk", filter=Q(rating=Feedback.Rating.DOWN)),
        )
        .order_by()
    )
    found = [ModelFeedback(row["model"], row["up"], row["down"]) for row in rows]
    return sorted(found, key=lambda item: (-item.total, item.model))


@dataclass
class LatestFeedback:
    feedback: Feedback
    # The turn's address when the staff member may see its chat, else "".
    url: str


def latest(viewer: AbstractBaseUser, limit: int = LATEST) -> list[LatestFeedback]:
    """The latest feedback, each linked to its turn when ``viewer`` may see that chat (staff
    see no chat they were not given: the link is left out, the rating and comment are not)."""
    items = list(
        Feedback.objects.select_related("user", "turn__thread").order_by("-updated_at", "-pk")[
            :limit
        ]
    )
    visible = set(
        permissions.visible_threads(viewer)
        .filter(pk__in={item.turn.thread_id for item in items})
        .values_list("pk", flat=True)
    )
    return [
        LatestFeedback(
            item,
            f"{item.turn.thread.get_absolute_url()}#turn-{item.turn_id}"
            if item.turn.thread_id in visible
            else "",
        )
        for item in items
    ]


def csv_lines() -> Iterator[str]:
    """All feedback as CSV lines, oldest first, streamed from the database."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = Feedback.objects.order_by("updated_at", "pk").values_list(
        "updated_at",
        F("user__username"),
        "rating",
        "comment",
        "model",
        F("turn__provider__name"),
        F("turn__thread_id"),
        "turn_id",
    )
    for updated, *rest in rows.iterator(chunk_size=2000):
        stamp = timezone.localtime(updated).isoformat(timespec="seconds")
        yield writer.writerow([stamp, *(_cell(value) for value in rest)])


def dashboard(viewer: AbstractBaseUser) -> dict:
    """The staff dashboard's feedback section."""
    return {"feedback_by_model": by_model(), "latest_feedback": latest(viewer)}

"""Feedback on an answer: 👍 or 👎 and an optional comment, by anyone who can see the chat."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from chat.models import Turn
from chat.services import feedback, permissions
from chat.views.staff import staff_required


@require_POST
def give_feedback(request: HttpRequest, thread_id: int, turn_id: int) -> HttpResponse:
    """A thumb pressed (pressing the pressed one again takes it back), or a comment saved;
    answers with the redrawn feedback box of that answer."""
    thread = permissions.thread_for(request.user, thread_id)
    turn = Turn.objects.filter(pk=turn_id, thread_id=thread_id).first() if thread else None
    if turn is None:
        raise Http404(_("No such answer."))
    rating = request.POST.get("rating", "")
    comment = request.POST.get("comment")  # None: a thumb was pressed, the comment stays
    given = feedback.of_turn(request.user, turn)
    context = {"turn": turn, "error": "", "saved": False}
    if comment is None and given is not None and given.rating == rating:
        feedback.withdraw(request.user, turn)
        given = None
    else:
        try:
            given = feedback.give(request.user, turn, rating, comment)
            context["saved"] = True
        except feedback.Refused as exc:
            context["error"] = str(exc)
    context["feedback"] = given
    # 200 with the reason in the box, as for a form with errors (htmx swaps no 4xx answer).
    return render(request, "chat/feedback.html#widget", context)


@require_GET
@staff_required
def feedback_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every rating with its comment, model and turn, for a spreadsheet."""
    response = StreamingHttpResponse(feedback.csv_lines(), content_type="text/csv")
    name = f"feedback-{timezone.localdate():%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response

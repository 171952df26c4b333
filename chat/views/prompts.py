"""Views of the prompt library: manage prompts (owner only), list them for the composer's ``/``
menu, ask for a prompt's variables and return its filled text."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat.models import Prompt
from chat.request_ids import parse_id
from chat.services import prompts

EXAMPLE = "Summarise {{topic}} for {{audience|choice:engineers,managers}} as of {{day|date}}."
MENU_SIZE = 50


def _own_or_404(request: HttpRequest, prompt_id: int) -> Prompt:
    prompt = prompts.own_prompt(request.user, prompt_id)
    if prompt is None:
        raise Http404(_("No such prompt."))
    return prompt


def _context(request: HttpRequest, **extra) -> dict:
    return {
        "own": Prompt.objects.filter(owner=request.user).select_related("team"),
        "shared": prompts.usable_prompts(request.user).exclude(owner=request.user),
        "teams": prompts.teams_of(request.user),
        "values": {"name": "", "text": EXAMPLE, "team": ""},
        "error": "",
    } | extra


@require_GET
def library(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/prompts.html", _context(request))


@require_GET
def edit_prompt(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = _own_or_404(request, prompt_id)
    values = {"name": prompt.name, "text": prompt.text, "team": str(prompt.team_id or "")}
    return render(
        request, "chat/prompts.html#prompt-form", _context(request, values=values, editing=prompt)
    )


@require_POST
def save_prompt(request: HttpRequest, prompt_id: int | None = None) -> HttpResponse:
    prompt = _own_or_404(request, prompt_id) if prompt_id is not None else None
    values = {key: request.POST.get(key, "") for key in ("name", "text", "team")}
    try:
        prompts.save_prompt(
            request.user, prompt, values["name"], values["text"], parse_id(values["team"])
        )
    except prompts.PromptError as exc:
        context = _context(request, values=values, error=str(exc), editing=prompt)
        return render(request, "chat/prompts.html#prompt-form", context)
    return render(
        request, "chat/prompts.html#saved", _context(request, notice=_("Prompt saved."), oob=True)
    )


@require_POST
def delete_prompt(request: HttpRequest, prompt_id: int) -> HttpResponse:
    _own_or_404(request, prompt_id).delete()
    return render(request, "chat/prompts.html#prompt-list", _context(request))


@require_GET
def menu(request: HttpRequest) -> JsonResponse:
    """The prompts the composer's ``/`` menu lists, filtered by what follows the slash."""
    found = prompts.usable_prompts(request.user)
    query = request.GET.get("q", "").strip()[:100]
    if query:
        found = found.filter(name__icontains=query)
    return JsonResponse(
        {
            "prompts": [
                {
                    "id": prompt.pk,
                    "name": prompt.name,
                    "preview": prompt.text[:80],
                    "team": prompt.team.name if prompt.team else "",
                }
                for prompt in found[:MENU_SIZE]
            ]
        }
    )


@require_http_methods(["GET", "POST"])
def use_prompt(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """GET: the form for the prompt's variables (empty when it has none). POST: its text filled
    with the posted values, as JSON ``{"text": …}``, or ``{"error": …}`` with status 400."""
    prompt = prompts.usable_prompt(request.user, prompt_id)
    if prompt is None:
        raise Http404(_("No such prompt."))
    if request.method == "POST":
        try:
            return JsonResponse({"text": prompts.fill(prompt.text, request.POST.dict())})
        except prompts.PromptError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    try:
        variables = prompts.variables_of(prompt.text)
    except prompts.PromptError as exc:  # saved before a rule changed: say so, do not guess
        return JsonResponse({"error": str(exc)}, status=400)
    return render(request, "chat/prompt_variables.html", {"prompt": prompt, "variables": variables})

"""The import page: upload a ChatGPT export or a Switchboard JSON export."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from chat.services import importing


@require_http_methods(["GET", "POST"])
def import_chats(request: HttpRequest) -> HttpResponse:
    context: dict = {"limit_mb": f"{settings.IMPORT_MAX_BYTES / 1024 / 1024:g}"}
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            context["error"] = _("Choose a file to import.")
        else:
            try:
                context["imported"] = importing.import_upload(request.user, upload, upload.size)
            except importing.ImportRefused as exc:
                context["error"] = str(exc)
    # 200 even when refused (a 4xx is a console error in the browser); the message says why.
    template = "chat/import.html#result" if request.htmx else "chat/import.html"
    return render(request, template, context)

"""A user's own account page: download their data, delete their account; dismiss a banner.

Thin: the work is in :mod:`chat.services.account_data` and :mod:`chat.services.announcements`."""

from __future__ import annotations

from django import forms
from django.contrib.auth import logout
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotFound
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from chat.services import account_data, announcements


class DeleteAccountForm(forms.Form):
    confirm = forms.CharField(
        label=_("Type your username (or your password) to confirm"),
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, user, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"]
        if not account_data.confirmation_matches(self.user, typed):
            raise forms.ValidationError(account_data.CONFIRM_MISMATCH)
        return typed


@require_GET
def account_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/account.html", {"form": DeleteAccountForm(request.user)})


@require_GET
def download_my_data(request: HttpRequest) -> FileResponse:
    return FileResponse(
        account_data.build_archive(request.user),
        as_attachment=True,
        filename=account_data.archive_name(request.user),
        content_type="application/zip",
    )


@require_POST
def delete_my_account(request: HttpRequest) -> HttpResponse:
    form = DeleteAccountForm(request.user, request.POST)
    if not form.is_valid():
        return render(request, "chat/account.html", {"form": form}, status=400)
    user = request.user
    logout(request)  # this session first: the deletion then closes the user's other sockets
    account_data.delete_account(user)
    return redirect("login")


@require_POST
def dismiss_announcement(request: HttpRequest, announcement_id: int) -> HttpResponse:
    if not announcements.dismiss(request.user, announcement_id):
        return HttpResponseNotFound(_("No such announcement."))
    if request.htmx:
        return HttpResponse(announcements.render_for(request.user, request=request))
    back = request.headers.get("referer", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = "/"
    return redirect(back)

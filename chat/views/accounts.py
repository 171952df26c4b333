"""First run and sign-up: the first account (which becomes administrator), and self sign-up."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import get_text_list
from django.utils.translation import gettext as _

from chat.forms import AccountCreationForm
from chat.models import SiteSettings
from chat.services import login_throttle
from chat.signin.backends import ACCOUNT_BACKEND


@login_not_required
def setup(request: HttpRequest) -> HttpResponse:
    """The first visitor of an empty install creates the first account, which becomes admin
    (unless ``FIRST_RUN_SETUP`` is off: the administrator is then created on the server)."""
    if not settings.FIRST_RUN_SETUP:
        return render(request, "registration/setup_disabled.html", status=404)
    User = get_user_model()
    if User.objects.exists():
        return redirect("chat:home")
    form = AccountCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            if User.objects.select_for_update().exists():
                return redirect("login")
            user = form.save(commit=False)
            user.is_staff = user.is_superuser = True
            user.save()
        login(request, user, backend=ACCOUNT_BACKEND)
        messages.success(
            request, _("Welcome! Your account is the administrator of this Switchboard.")
        )
        return redirect("chat:home")
    return render(request, "registration/setup.html", {"form": form})


@login_not_required
def signup(request: HttpRequest) -> HttpResponse:
    site = SiteSettings.load()
    if not site.allow_signup or not settings.LOCAL_LOGIN:
        raise Http404(_("Sign-up is turned off. Ask an administrator for an account."))
    domains = login_throttle.parse_domains(site.allowed_email_domains)
    form = AccountCreationForm(request.POST or None)
    if domains:
        form.fields["email"].required = True
        form.fields["email"].help_text = _("An address at %(domains)s.") % {
            "domains": get_text_list(domains)  # "a or b", "a, b or c": Django's own "or"
        }
    if request.method == "POST" and form.is_valid():
        if not login_throttle.email_domain_allowed(form.cleaned_data["email"], domains):
            form.add_error(
                "email",
                _("Sign-up is open to addresses at %(domains)s.") % {"domains": ", ".join(domains)},
            )
            return render(request, "registration/signup.html", {"form": form})
        user = form.save()
        login(request, user, backend=ACCOUNT_BACKEND)
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form})

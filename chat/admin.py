from __future__ import annotations

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from chat.models import (
    Announcement,
    ApiAccess,
    ApiKey,
    AuditLogEntry,
    BudgetAlert,
    ExternalIdentity,
    ModelSetting,
    Provider,
    SiteSettings,
    Team,
    Thread,
    ThreadShare,
    Turn,
    UsageRecord,
    UserQuota,
)
from chat.services import (
    accounts,
    announcements,
    audit,
    parameters,
    providers,
    roles,
    session_binding,
)
from chat.views import governance as governance_views
from chat.views.login import ThrottledAdminAuthenticationForm

User = get_user_model()

# The admin's own login page counts failed logins like /accounts/login/ does.
admin.site.login_form = ThrottledAdminAuthenticationForm
# Whose administration this is, on every admin page and tab (Django's own words otherwise).
admin.site.site_header = _("Switchboard administration")
admin.site.site_title = _("Switchboard administration")
admin.site.index_title = _("Site administration")


class AuditedAdmin(admin.ModelAdmin):
    """Every saved field, inline row and deletion goes to the audit log (never secret fields)."""

    secret_fields: tuple[str, ...] = ()

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        audit.record_form(request.user, obj, form, created=not change, skip=self.secret_fields)

    def save_formset(self, request, form, formset, change) -> None:
        audit.record_formset_deletions(request.user, formset)
        super().save_formset(request, form, formset, change)
        audit.record_formset(request.user, formset)

    def delete_model(self, request, obj) -> None:
        audit.record(request.user, obj, "deleted")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        for obj in queryset:
            audit.record(request.user, obj, "deleted")
        super().delete_queryset(request, queryset)


class ConnectionAdmin(AuditedAdmin):
    """The admin of something that connects out with a secret (a provider's API key, an MCP
    server's headers): records when the secret is set, replaced or removed (never its value),
    and offers "Test connection" on the change form (subclasses add the list action)."""

    secret: str  # the form field of a new secret; ``clear_<secret>`` removes it
    secret_label: str

    @property
    def secret_fields(self) -> tuple[str, ...]:  # never written to the audit log
        return (self.secret, f"clear_{self.secret}")

    def save_model(self, request, obj, form, change) -> None:
        stored = {f"{self.secret}_encrypted": ""}
        had = change and type(obj).objects.filter(pk=obj.pk).exclude(**stored).exists()
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get(f"clear_{self.secret}"):
            if had:
                audit.record(request.user, obj, "changed", self.secret_label, "set", "removed")
        elif form.cleaned_data.get(self.secret):
            before, after = ("set", "replaced") if had else ("not set", "set")
            audit.record(request.user, obj, "changed", self.secret_label, before, after)

    def get_urls(self):
        opts = self.opts
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name=f"{opts.app_label}_{opts.model_name}_test_connection",
            ),
            *super().get_urls(),
        ]

    def _report(self, request: HttpRequest, obj):
        """Test the connection of ``obj`` and tell the user how it went."""
        raise NotImplementedError

    def _may_test(self, request: HttpRequest, obj) -> bool:
        return self.has_change_permission(request, obj)

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(_("No such %(thing)s.") % {"thing": self.opts.verbose_name})
        if not self._may_test(request, obj):
            raise PermissionDenied
        self._report(request, obj)
        opts = self.opts
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        )


# -- providers and their models ------------------------------------------------------------------


class ProviderForm(forms.ModelForm):
    """The API key is write-only: it is never put back into the form, only replaced."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty to keep the current key. Stored encrypted; never shown again."),
    )
    clear_api_key = forms.BooleanField(required=False, label=_("Remove the stored key"))
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text=_("Up to and including /v1, e.g. https://gw.example/v1"),
    )

    class Meta:
        model = Provider
        fields = ("name", "base_url", "default_api", "enabled", "is_default", "title_model")

    def save(self, commit: bool = True) -> Provider:
        provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.set_api_key("")
        elif self.cleaned_data.get("api_key"):
            provider.set_api_key(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(ConnectionAdmin):
    form = ProviderForm
    change_form_template = "admin/chat/provider/change_form.html"
    secret, secret_label = "api_key", "API key"
    list_display = ("name", "base_url", "default_api", "enabled", "is_default", "api_key_masked")
    readonly_fields = ("api_key_masked",)
    actions = ["test_connections", "import_models"]
    fields = (
        "name",
        "base_url",
        "default_api",
        "enabled",
        "is_default",
        "api_key_masked",
        "api_key",
        "clear_api_key",
        "allowed_teams",
        "allowed_users",
        "title_model",
    )
    filter_horizontal = ("allowed_teams", "allowed_users")

    @admin.display(description=_("API key"))
    def api_key_masked(self, obj: Provider) -> str:
        return obj.api_key_masked or "—"

    # "Test connection": a button on the change form and an action on the list.

    def get_urls(self):
        return [
            path(
                "test-unsaved/",
                self.admin_site.admin_view(governance_views.test_unsaved_provider),
                name="chat_provider_test_unsaved",
            ),
            *super().get_urls(),
        ]

    def _report(self, request: HttpRequest, provider: Provider) -> providers.ConnectionResult:
        result = async_to_sync(providers.check_connection)(provider)
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(
            request,
            _("%(provider)s: %(result)s") % {"provider": provider.name, "result": result.message},
            level,
        )
        return result

    def _may_test(self, request: HttpRequest, obj: Provider) -> bool:
        return self.has_view_or_change_permission(request, obj)

    @admin.action(description=_("Test connection (GET /v1/models)"))
    def test_connections(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            self._report(request, provider)

    @admin.action(description=_("Add the gateway's models to the model settings"))
    def import_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            result = self._report(request, provider)
            known = set(provider.model_settings.values_list("model", flat=True))
            for model in result.models:
                if model not in known:
                    setting = ModelSetting.objects.create(provider=provider, model=model)
                    audit.record(request.user, setting, "created")


class ModelSettingForm(forms.ModelForm):
    class Meta:
        model = ModelSetting
        fields = (
            "provider",
            "model",
            "enabled",
            "display_name",
            "price_input",
            "price_cached_input",
            "price_output",
            "default_params",
            "fallback_models",
        )

    def clean_fallback_models(self) -> list[str]:
        value = self.cleaned_data.get("fallback_models") or []
        if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
            raise forms.ValidationError(_('A JSON list of model ids, e.g. ["gpt-5.4-mini"].'))
        if self.cleaned_data.get("model") in value:
            raise forms.ValidationError(_("A model cannot be its own fallback."))
        return value

    def clean_default_params(self) -> dict:
        """The same parameter names and checks as a chat's settings panel."""
        value = self.cleaned_data.get("default_params") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_('A JSON object, e.g. {"temperature": 0.2}.'))
        unknown = sorted(set(value) - set(parameters.SPECS_BY_NAME))
        if unknown:
            raise forms.ValidationError(
                _("Unknown parameter(s): %(unknown)s. Known: %(known)s.")
                % {"unknown": ", ".join(unknown), "known": ", ".join(parameters.SPECS_BY_NAME)}
            )
        raw, checked = parameters.form_values(value), {}
        for api in parameters.APIS:
            params, errors = parameters.validate(raw, api)
            if errors:
                raise forms.ValidationError(
                    "; ".join(f"{name}: {message}" for name, message in errors.items())
                )
            checked |= params
        return checked


@admin.register(ModelSetting)
class ModelSettingAdmin(AuditedAdmin):
    form = ModelSettingForm
    list_display = (
        "model",
        "provider",
        "enabled",
        "display_name",
        "price_input",
        "price_cached_input",
        "price_output",
    )
    list_editable = ("enabled", "display_name")
    list_filter = ("provider", "enabled")
    fields = (
        "provider",
        "model",
        "enabled",
        "display_name",
        ("price_input", "price_cached_input", "price_output"),
        "default_params",
        "allowed_teams",
        "allowed_users",
        "fallback_models",
    )
    filter_horizontal = ("allowed_teams", "allowed_users")
    search_fields = ("model", "display_name")
    list_select_related = ("provider",)


# -- site settings and conversations -----------------------------------------------------------


@admin.register(SiteSettings)
class SiteSettingsAdmin(AuditedAdmin):
    fieldsets = (
        (_("Sign-up"), {"fields": ("allow_signup", "allowed_email_domains")}),
        (
            _("Default quotas (empty: no limit)"),
            {
                "fields": (
                    "default_tokens_per_day",
                    "default_tokens_per_month",
                    "default_cost_per_month",
                    "staff_exempt",
                )
            },
        ),
        (_("Images in messages"), {"fields": ("image_hosts",)}),
        (
            _("Retention (manage.py purge_expired; empty: keep everything)"),
            {"fields": ("chat_retention_days", "usage_detail_days")},
        ),
        (_("Models"), {"fields": ("default_model",)}),
        (_("Share links"), {"fields": ("anonymous_share_links",)}),
        (_("API (/api/v1)"), {"fields": ("api_enabled",)}),
    )

    def has_add_permission(self, request) -> bool:
        return not SiteSettings.objects.exists()


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    """Teams (workspaces): their members see the threads shared with the team."""

    list_display = ("name", "external_group", "member_count", "created_at")
    search_fields = ("name", "external_group", "members__username")
    filter_horizontal = ("members",)
    fields = (
        "name",
        "external_group",
        "members",
        ("cost_budget_per_month", "token_budget_per_month"),
        "default_model",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(member_total=Count("members"))

    @admin.display(description=_("members"), ordering="member_total")
    def member_count(self, team: Team) -> int:
        return team.member_total


class ThreadShareInline(admin.TabularInline):
    model = ThreadShare
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "updated_at")
    list_select_related = ("owner",)
    search_fields = ("title", "owner__username")
    raw_id_fields = ("current_turn",)
    inlines = [ThreadShareInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A chat is started by its owner in the chat (the first message makes it), never here.
        return False


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "thread",
        "status",
        "model",
        "total_tokens",
        "time_to_first_token_ms",
        "created_at",
    )
    list_filter = ("status", "model")
    list_select_related = ("thread",)
    raw_id_fields = ("thread", "parent", "author")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A turn is a message sent in a chat and its answer: only the chat makes one.
        return False


# -- users and quotas ---------------------------------------------------------------------------


ROLES = (
    ("member", _("Member")),
    ("auditor", _("Auditor (read-only usage dashboard, CSV and audit log)")),
    ("admin", _("Administrator (staff)")),
)
# The same roles in a list column (no explanation in brackets).
ROLE_NAMES = {"member": _("Member"), "auditor": _("Auditor"), "admin": _("Administrator")}


class RoleFormMixin(forms.Form):
    """Two roles: an administrator is staff and superuser; a member is neither."""

    role = forms.ChoiceField(choices=ROLES, initial="member")
    acting_user = None  # set by the admin, to stop staff locking themselves out

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["role"].initial = role_of(self.instance)

    def clean(self):
        cleaned = super().clean()
        me = self.acting_user
        demoted = cleaned.get("role") != "admin" or cleaned.get("is_active") is False
        if me is not None and self.instance.pk == me.pk and demoted:
            raise forms.ValidationError(
                _("You cannot remove your own administrator role or deactivate yourself.")
            )
        return cleaned

    def save(self, commit: bool = True):
        user = super().save(commit=False)
        role = self.cleaned_data.get("role")
        user.is_staff = user.is_superuser = role == "admin"
        save_m2m = self.save_m2m

        def save_m2m_and_groups() -> None:
            save_m2m()
            roles.set_auditor(user, role == "auditor")

        self.save_m2m = save_m2m_and_groups
        if commit:
            user.save()
            self.save_m2m()
        return user


def role_of(user) -> str:
    if user.is_staff:
        return "admin"
    return "auditor" if roles.is_auditor(user) else "member"


class UserRoleChangeForm(RoleFormMixin, UserChangeForm):
    pass


class UserRoleCreationForm(RoleFormMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        fields = ("username", "email")


class UserQuotaInline(admin.StackedInline):
    model = UserQuota
    can_delete = True
    max_num = 1
    verbose_name_plural = _("quota (empty fields: the defaults in Site settings)")
    fields = (
        ("tokens_per_day", "tokens_per_month"),
        ("cost_per_month", "requests_per_minute"),
        ("unlimited_rate", "exempt"),
        "billing_team",
        "upload_bytes_per_day",  # attachments (chat/services/attachments/limits.py)
    )


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(AuditedAdmin):
    """Where accounts sign in. Adding one links an organisation sign-in (kind, issuer, subject)
    to an existing account: the only way an e-mail or username collision is resolved."""

    list_display = ("user", "kind", "issuer", "subject", "last_login_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "subject", "issuer")
    raw_id_fields = ("user",)
    readonly_fields = ("groups", "created_at", "last_login_at")


admin.site.unregister(User)


@admin.register(User)
class SwitchboardUserAdmin(AuditedAdmin, UserAdmin):
    form = UserRoleChangeForm
    add_form = UserRoleCreationForm
    inlines = [UserQuotaInline]
    secret_fields = ("password", "password1", "password2", "usable_password")
    list_display = (
        "username",
        "email",
        "role",
        "origin",
        "is_active",
        "last_login",
        "date_joined",
    )
    list_filter = ("is_staff", "is_active", "external_identities__kind")
    actions = ["deactivate", "reactivate", "reset_passwords"]
    readonly_fields = ("origin",)
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (_("Access"), {"fields": ("role", "is_active", "origin")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "email",
                    "role",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )

    @admin.display(description=_("Role"), ordering="is_staff")
    def role(self, obj) -> str:
        return ROLE_NAMES[role_of(obj)]

    @admin.display(description=_("Signs in with"))
    def origin(self, obj) -> str:
        kinds = sorted({identity.get_kind_display() for identity in obj.external_identities.all()})
        return ", ".join(kinds) or _("Local password")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("external_identities", "groups")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.acting_user = request.user
        return form

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        # Django gives the staff member's own session a new key here too: their open sockets
        # reconnect with it rather than find their session gone.
        change = super().user_change_password
        return session_binding.keeps_this_session(change)(request, id, form_url)

    @admin.action(description=_("Deactivate selected users (they can no longer log in)"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = accounts.deactivate(request.user, queryset)
        self.message_user(
            request, _("Deactivated %(count)d user(s).") % {"count": count}, messages.SUCCESS
        )

    @admin.action(description=_("Reactivate selected users"))
    def reactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = accounts.reactivate(request.user, queryset)
        self.message_user(
            request, _("Reactivated %(count)d user(s).") % {"count": count}, messages.SUCCESS
        )

    @admin.action(description=_("Reset passwords (show a temporary password once)"))
    def reset_passwords(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        """New random passwords, shown on this page only (never stored in a message cookie);
        the users' sessions end because their password changed."""
        issued = accounts.reset_passwords(request.user, queryset)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Temporary passwords"),
            "issued": issued,
            "opts": self.model._meta,
        }
        response = render(request, "staff/reset_passwords.html", context)
        response["Cache-Control"] = "no-store"
        return response


# -- usage and the audit log (read only) ---------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "at",
        "actor_name",
        "action",
        "object_type",
        "object_repr",
        "field",
        "old_value",
        "new_value",
    )
    list_filter = ("object_type", "action")
    search_fields = ("actor_name", "object_repr", "field")
    date_hierarchy = "at"


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    """Team budget thresholds reached, one per team, budget, threshold and month, with the
    webhook's outcome (chat/services/budgets.py)."""

    list_display = ("created_at", "team", "month", "metric", "threshold", "delivered_at", "error")
    list_filter = ("metric", "threshold")
    list_select_related = ("team",)


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "model",
        "provider_name",
        "status",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "estimated",
    )
    list_filter = ("status", "api", "estimated")
    list_select_related = ("user",)
    search_fields = ("model", "user__username")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Announcement)
class AnnouncementAdmin(AuditedAdmin):
    """Saving or deleting a banner shows the change on every open page at once."""

    list_display = ("message", "level", "starts_at", "ends_at", "created_at")
    fields = ("message", "level", "starts_at", "ends_at")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        announcements.broadcast_after_commit()

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        announcements.broadcast_after_commit()

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)
        announcements.broadcast_after_commit()


# -- the API: everyone's keys, per-user switch -------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Everyone's personal API keys: listed with prefix and dates, revocable; the key itself is
    never stored, so it cannot be shown."""

    list_display = (
        "name",
        "user",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    fields = (
        "user",
        "name",
        "prefix",
        "allowed_models",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are made on the user's page or with manage.py create_api_key

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected keys"))
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        from chat.api.keys import revoke

        revoked = sum(revoke(key, request.user) for key in queryset)
        self.message_user(
            request, _("%(count)d key(s) revoked.") % {"count": revoked}, messages.SUCCESS
        )


@admin.register(ApiAccess)
class ApiAccessAdmin(AuditedAdmin):
    """Turn the API off (or on again) for one user; the site-wide switch is in Site settings."""

    list_display = ("user", "enabled")
    list_editable = ("enabled",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)


from chat import mcp_admin  # noqa: E402, F401  (registers the MCP server pages)

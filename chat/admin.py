from __future__ import annotations

from django import forms
from django.contrib import admin

from chat.models import Provider, SiteSettings, Thread, Turn


class ProviderForm(forms.ModelForm):
    """The API key is write-only: it is never put back into the form, only replaced."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the current key. Stored encrypted; never shown again.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text="Up to and including /v1, e.g. https://gw.example/v1",
    )

    class Meta:
        model = Provider
        fields = ("name", "base_url", "default_api", "enabled", "is_default")

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
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "base_url", "default_api", "enabled", "is_default", "api_key_masked")
    readonly_fields = ("api_key_masked",)
    fields = (
        "name",
        "base_url",
        "default_api",
        "enabled",
        "is_default",
        "api_key_masked",
        "api_key",
        "clear_api_key",
    )

    @admin.display(description="API key")
    def api_key_masked(self, obj: Provider) -> str:
        return obj.api_key_masked or "—"


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return not SiteSettings.objects.exists()


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "updated_at")
    list_select_related = ("owner",)
    search_fields = ("title", "owner__username")
    raw_id_fields = ("current_turn",)


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

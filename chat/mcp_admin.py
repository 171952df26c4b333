"""Staff pages for MCP servers: the server form (headers write-only, stored encrypted), "Test
connection" (connect, list and store the tools), the tools as listed, and the call audit."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from chat.admin import ConnectionAdmin, ReadOnlyAdmin
from chat.models import McpCall, McpServer, McpTool
from chat.services.mcp import registry

# Header names HTTP forbids or that the transport sets itself.
_RESERVED_HEADERS = {"host", "content-length", "content-type", "accept", "mcp-session-id"}


def parse_headers(text: str) -> tuple[dict[str, str], str]:
    """``Name: value`` per line → (headers, error)."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not value:
            return {}, _("Line %(number)d: write “Name: value”.") % {"number": number}
        if not all(33 <= ord(c) <= 126 and c not in '()<>@,;:\\"/[]?={}' for c in name):
            return {}, _("Line %(number)d: %(name)s is not a valid header name.") % {
                "number": number,
                "name": repr(name),
            }
        if name.lower() in _RESERVED_HEADERS:
            return {}, _("Line %(number)d: the %(name)s header is set by Switchboard.") % {
                "number": number,
                "name": name,
            }
        if any(c in value for c in "\r\n\0"):
            return {}, _("Line %(number)d: the value has a line break.") % {"number": number}
        headers[name] = value
    return headers, ""


class McpServerForm(forms.ModelForm):
    """Headers are write-only: never put back into the form (they hold tokens), only replaced."""

    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text=_(
            "One “Name: value” per line, e.g. “Authorization: Bearer …”. Leave empty to keep "
            "the current headers. Stored encrypted; never shown again."
        ),
    )
    clear_headers = forms.BooleanField(required=False, label=_("Remove the stored headers"))
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = McpServer
        fields = (
            "name",
            "url",
            "transport",
            "teams",
            "connect_timeout",
            "call_timeout",
            "requires_approval",
            "enabled",
        )

    def clean_headers(self) -> dict[str, str]:
        headers, error = parse_headers(self.cleaned_data.get("headers", ""))
        if error:
            raise forms.ValidationError(error)
        return headers

    def save(self, commit: bool = True) -> McpServer:
        server = super().save(commit=False)
        if self.cleaned_data.get("clear_headers"):
            server.set_headers({})
        elif self.cleaned_data.get("headers"):
            server.set_headers(self.cleaned_data["headers"])
        if commit:
            server.save()
            self.save_m2m()
        return server


@admin.register(McpServer)
class McpServerAdmin(ConnectionAdmin):
    form = McpServerForm
    change_form_template = "admin/chat/mcpserver/change_form.html"
    secret, secret_label = "headers", "headers"
    list_display = ("name", "url", "transport", "enabled", "requires_approval", "tool_count")
    readonly_fields = ("header_names", "tools_refreshed_at", "last_error")
    filter_horizontal = ("teams",)
    actions = ["test_connections"]
    fields = (
        "name",
        "url",
        "transport",
        "header_names",
        "headers",
        "clear_headers",
        "teams",
        "connect_timeout",
        "call_timeout",
        "requires_approval",
        "enabled",
        "tools_refreshed_at",
        "last_error",
    )

    @admin.display(description=_("Stored headers"))
    def header_names(self, obj: McpServer) -> str:
        try:
            names = sorted(obj.headers)
        except ValueError:
            return _("(unreadable: encryption key changed)")
        return ", ".join(f"{name}: ••••" for name in names) or "—"

    @admin.display(description=_("Tools"))
    def tool_count(self, obj: McpServer) -> int:
        return obj.tools.filter(available=True).count()

    def _report(self, request: HttpRequest, server: McpServer) -> None:
        listed, error = registry.refresh_now(server)
        if error:
            self.message_user(request, error, messages.ERROR)
            return
        names = ", ".join(tool.name for tool in listed) or _("none")
        self.message_user(
            request,
            _("%(server)s: connected; %(count)d tools: %(names)s.")
            % {"server": server.name, "count": len(listed), "names": names},
            messages.SUCCESS,
        )

    @admin.action(description=_("Test connection and list the tools"))
    def test_connections(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server in queryset:
            self._report(request, server)


@admin.register(McpTool)
class McpToolAdmin(ReadOnlyAdmin):
    list_display = ("name", "server", "available", "problem")
    list_filter = ("server", "available")
    search_fields = ("name", "description")


@admin.register(McpCall)
class McpCallAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "server_name", "tool_name", "user", "status", "duration_ms")
    list_filter = ("status", "server_name")
    search_fields = ("tool_name", "server_name", "user__username")
    date_hierarchy = "created_at"

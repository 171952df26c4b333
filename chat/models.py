"""Switchboard's data: providers, threads and the tree of turns in each thread."""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.timezone import now as timezone_now

from chat import crypto
from chat.upstream.request import Api


class Provider(models.Model):
    """An OpenAI-compatible gateway. Its API key is stored encrypted and never rendered."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(max_length=500, help_text="Up to and including /v1.")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    default_api = models.CharField(
        max_length=20, choices=Api.choices(), default=Api.RESPONSES.value
    )
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    # Model access (chat/services/model_access.py): both empty, everyone may use the provider.
    allowed_teams = models.ManyToManyField(
        "Team",
        blank=True,
        related_name="+",
        help_text="Only members of these teams (and the users below) may use this provider. "
        "Leave both empty: everyone.",
    )
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    title_model = models.CharField(
        "title model",
        max_length=200,
        blank=True,
        default="",
        help_text="Writes chat titles after the first answer. Empty: the smallest model listed "
        "(one whose id ends in -mini or -nano), else the chat's own model.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)

    @property
    def api_key_masked(self) -> str:
        try:
            return crypto.mask(self.api_key)
        except ValueError:
            return "(unreadable: encryption key changed)"


class SiteSettings(models.Model):
    """Instance-wide switches that staff change in the admin (a single row)."""

    allow_signup = models.BooleanField(
        default=False, help_text="Let people create their own account at /accounts/signup/."
    )
    allowed_email_domains = models.TextField(
        blank=True,
        help_text="Sign-up only with an email address at one of these domains (one per line or "
        "comma-separated, e.g. example.com). Empty: any address.",
    )
    # Default quotas: a user's own quota overrides each of them; empty means no limit.
    default_tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    default_tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    default_cost_per_month = models.DecimalField(
        "default cost budget per month", max_digits=12, decimal_places=2, null=True, blank=True
    )
    staff_exempt = models.BooleanField(
        "staff are exempt from quotas",
        default=False,
        help_text="Staff ignore token and cost quotas and the rate limit.",
    )
    default_model = models.ForeignKey(
        "ModelSetting",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The model a new member starts on (a team's default model comes first). "
        "Empty: the first model in the list.",
    )
    image_hosts = models.TextField(
        "allowed image hosts",
        blank=True,
        help_text="Images in messages from these hosts load by themselves (one per line, e.g. "
        "images.example.com, *.cdn.example.com or images.example.com:8443). Images from any "
        "other host show a “Load image from …” link instead, so a model cannot make readers' "
        "browsers contact a server of its choosing.",
    )
    # Retention (manage.py purge_expired): empty keeps everything, the default.
    chat_retention_days = models.PositiveIntegerField(
        "delete chats not touched for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="A chat nobody wrote in or changed for this many days is deleted with its "
        "shares. Empty: chats are kept for ever.",
    )
    usage_detail_days = models.PositiveIntegerField(
        "keep usage records in detail for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Older usage records are rolled up into one record per day, user and model: "
        "the dashboard and quotas count the same totals, the per-turn detail is gone. "
        "Empty: every record is kept.",
    )
    anonymous_share_links = models.BooleanField(
        "share links open without logging in",
        default=False,
        help_text="Off: a chat's share link opens only for people logged in on this instance.",
    )
    api_enabled = models.BooleanField(
        "API enabled",
        default=True,
        help_text="Let people call /api/v1 with their personal API keys. Off: every key is "
        "refused (running streams stop).",
    )

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"

    def clean(self) -> None:
        from chat.image_policy import parse_image_hosts

        try:
            self.image_hosts = "\n".join(parse_image_hosts(self.image_hosts))
        except ValueError as exc:
            raise ValidationError({"image_hosts": str(exc)}) from exc

    @classmethod
    def load(cls) -> SiteSettings:
        return cls.objects.get_or_create(pk=1)[0]


class ToolDefinition(models.Model):
    """A function tool from a user's library: JSON Schema parameters, offered per thread."""

    class Builtin(models.TextChoices):
        NONE = "", "None (the user answers each call)"
        CALCULATOR = "calculator", "Calculator"
        DATETIME = "datetime", "Current date and time"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tools"
    )
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict)
    builtin = models.CharField(max_length=20, choices=Builtin.choices, blank=True, default="")
    # Set for a tool of an MCP server (chat/services/mcp): run by that server, schema read-only.
    mcp_tool = models.ForeignKey(
        "McpTool", null=True, blank=True, on_delete=models.CASCADE, related_name="library_entries"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_tool_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name


class Preset(models.Model):
    """Named thread settings a user can start a chat from."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets"
    )
    name = models.CharField(max_length=100)
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True)
    api = models.CharField(max_length=20, choices=Api.choices(), blank=True)
    params = models.JSONField(default=dict, blank=True)
    tools = models.ManyToManyField(ToolDefinition, blank=True)
    # A chat started from this preset opens with this prompt in the composer.
    start_prompt = models.ForeignKey(
        "Prompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_preset_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """A workspace that staff create; threads can be shared with all of its members."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")
    # Set: the members follow this organisation group (OIDC, LDAP or the proxy header) at every
    # sign-in; empty: staff manage the members by hand and sign-in never touches them.
    external_group = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Organisation group whose members this team follows at every sign-in "
        "(OIDC, LDAP or proxy header). Empty: members are managed here by hand.",
    )
    # Monthly budgets (chat/services/budgets.py): spend of the members billed to this team.
    cost_budget_per_month = models.DecimalField(
        "cost budget per month",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Estimated from the model prices. Empty: no limit. 0: nothing may be spent.",
    )
    token_budget_per_month = models.PositiveBigIntegerField(
        "token budget per month",
        null=True,
        blank=True,
        help_text="Empty: no limit. 0: no tokens at all.",
    )
    default_model = models.ForeignKey(
        "ModelSetting",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The model this team's members start on. Empty: the organisation's default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Folder(models.Model):
    """A user's folder of their own chats in the sidebar (deleting it keeps its chats)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="folders"
    )
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_folder_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name


class Thread(models.Model):
    class TitleSource(models.TextChoices):
        MESSAGE = "message", "First line of the first message"
        MODEL = "model", "Written by a model"
        USER = "user", "Set by the user"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads"
    )
    title = models.CharField(max_length=200, default="New chat")
    # Who wrote the title: a model title replaces only the first-line one, never the user's.
    title_source = models.CharField(
        max_length=20, choices=TitleSource.choices, default=TitleSource.MESSAGE
    )
    # The owner's organisation of their sidebar (shared chats are organised by their owner only).
    pinned_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    folder = models.ForeignKey(
        Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="threads"
    )
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True)
    # Empty: the provider's default API.
    api = models.CharField(max_length=20, choices=Api.choices(), blank=True)
    # Request parameters the user set (only these are sent upstream); see services/parameters.py.
    params = models.JSONField(default=dict, blank=True)
    tools = models.ManyToManyField(ToolDefinition, blank=True, related_name="threads")
    # The turn at the end of the path the user is looking at; the thread is a tree of turns.
    current_turn = models.ForeignKey(
        "Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"]),
            # The sidebar's pages: a user's unarchived chats, newest first, pk as tie-break.
            models.Index(
                fields=["owner", "archived_at", "folder", "pinned_at", "-updated_at", "-id"],
                name="thread_sidebar_page",
            ),
            # Pinned chats, found without scanning the others.
            models.Index(
                fields=["owner", "-pinned_at"],
                condition=models.Q(pinned_at__isnull=False),
                name="thread_pinned",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("chat:thread", args=[self.pk])


class Access(models.TextChoices):
    """What a user may do with a thread, weakest first."""

    READ = "read", "Read only"
    COLLABORATE = "collaborate", "Collaborate"


class ThreadShare(models.Model):
    """A thread shared with a whole team or with one named user (exactly one of the two)."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="shares")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="shares"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="thread_shares",
    )
    access = models.CharField(max_length=20, choices=Access.choices, default=Access.READ)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(team__isnull=False, user__isnull=True)
                    | models.Q(team__isnull=True, user__isnull=False)
                ),
                name="share_with_team_or_user",
            ),
            models.UniqueConstraint(fields=["thread", "team"], name="unique_team_share"),
            models.UniqueConstraint(fields=["thread", "user"], name="unique_user_share"),
        ]

    def __str__(self) -> str:
        return f"{self.thread} shared with {self.team or self.user} ({self.access})"


class Turn(models.Model):
    """One exchange: the user's message and the model's answer to it."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "Generating"
        AWAITING_TOOL = "awaiting_tool", "Waiting for a tool result"
        COMPLETED = "completed", "Completed"
        INCOMPLETE = "incomplete", "Incomplete"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Stopped"
        INTERRUPTED = "interrupted", "Interrupted"

    # Turns that hold the thread: a new message waits until they end.
    ACTIVE = (Status.IN_PROGRESS, Status.AWAITING_TOOL)
    FINISHED = (
        Status.COMPLETED,
        Status.INCOMPLETE,
        Status.FAILED,
        Status.CANCELLED,
        Status.INTERRUPTED,
    )

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="turns")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_text = models.TextField()
    output_text = models.TextField(blank=True, default="")
    reasoning_text = models.TextField(blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_PROGRESS)
    error = models.TextField(blank=True, default="")
    response_id = models.CharField(max_length=200, blank=True, default="")
    api = models.CharField(max_length=20, choices=Api.choices(), default=Api.RESPONSES.value)
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Tool calls of this turn, in order: chat.services.tool_loop.ToolCallRecord dicts.
    tool_calls = models.JSONField(default=list, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    # From usage.*_tokens_details: image tokens of the input, audio tokens of input and output.
    image_tokens = models.PositiveIntegerField(default=0)
    audio_tokens = models.PositiveIntegerField(default=0)
    # With ``n`` > 1 every choice is kept as a sibling turn (same parent): its index.
    choice_index = models.PositiveSmallIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # While generating: the channel-layer name of the runner (stop and snapshot requests reach
    # it on whichever worker it runs), and when it last said it was alive (dead workers' turns
    # are found by a stale heartbeat and marked interrupted).
    runner_channel = models.CharField(max_length=200, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set on the sibling turns of one "compare models" send (chat/services/compare.py): the
    # page shows them side by side while they are the end of the visible path.
    compare_group = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        # Every worker looks for stale running turns every few seconds.
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="turn_status_heartbeat")]

    def __str__(self) -> str:
        return f"Turn {self.pk} of thread {self.thread_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    # Flags for templates, which would otherwise compare status strings.
    @property
    def is_generating(self) -> bool:
        return self.status == self.Status.IN_PROGRESS

    @property
    def has_failed(self) -> bool:
        return self.status == self.Status.FAILED

    @property
    def was_stopped(self) -> bool:
        return self.status == self.Status.CANCELLED

    @property
    def can_retry(self) -> bool:
        return self.status in (self.Status.FAILED, self.Status.INTERRUPTED, self.Status.CANCELLED)


# -- usage, quotas, per-model settings and the audit log (admin panel) -------------------------


class ModelSetting(models.Model):
    """What staff decided about one model of one provider: shown or not, its name and prices."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="model_settings")
    model = models.CharField(max_length=200, help_text="The model id, as the gateway names it.")
    enabled = models.BooleanField(
        default=True, help_text="Disabled models are hidden from users and cannot be used."
    )
    display_name = models.CharField(
        max_length=200, blank=True, help_text="Shown in the model picker instead of the id."
    )
    price_input = models.DecimalField(
        "input price",
        max_digits=12,
        decimal_places=4,
        default=0,
        help_text="Per million input tokens (uncached).",
    )
    price_cached_input = models.DecimalField(
        "cached-input price",
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Per million cached input tokens; empty: the input price.",
    )
    price_output = models.DecimalField(
        "output price",
        max_digits=12,
        decimal_places=4,
        default=0,
        help_text="Per million output tokens (reasoning tokens included).",
    )
    default_params = models.JSONField(
        "default parameters",
        default=dict,
        blank=True,
        help_text='Sent with every request unless the chat sets them, e.g. {"temperature": 0.2}.',
    )
    allowed_teams = models.ManyToManyField(
        Team,
        blank=True,
        related_name="+",
        help_text="Only members of these teams (and the users below) may use this model. "
        "Leave both empty: everyone (who may use the provider).",
    )
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    fallback_models = models.JSONField(
        "fallback models",
        default=list,
        blank=True,
        help_text='Tried in order when this model fails before answering (429, 5xx, no '
        'connection), e.g. ["gpt-5.4-mini"]. Chat and API alike.',
    )

    class Meta:
        ordering = ["provider__name", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="unique_model_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.provider} · {self.display_name or self.model}"


_USAGE_GROUPS = ["user", "provider_name", "model"]
# The token counts of a request, and every column of a usage record that reports add up.
USAGE_TOKEN_FIELDS = ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens")
# Tokens spent on images and audio (issue 13): part of the input / output counts above, kept
# apart so that reports and the CSV can show them (the CSV adds them as its last columns).
MEDIA_TOKEN_FIELDS = ("image_tokens", "audio_tokens")
USAGE_SUMS = (*USAGE_TOKEN_FIELDS, "total_tokens", "cost", "requests", *MEDIA_TOKEN_FIELDS)
# A turn's usage columns (as the gateway reports them), in the order chats are exported with.
TURN_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    *MEDIA_TOKEN_FIELDS,
)


class UsageRecord(models.Model):
    """Tokens one upstream exchange consumed (one per turn, or per tool-loop step), with its cost.

    Users, threads and providers may be deleted later; the record stays, with names kept."""

    created_at = models.DateTimeField(default=timezone_now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    thread = models.ForeignKey(Thread, null=True, on_delete=models.SET_NULL, related_name="+")
    turn = models.ForeignKey(Turn, null=True, on_delete=models.SET_NULL, related_name="+")
    step = models.PositiveSmallIntegerField(default=0)
    provider = models.ForeignKey(Provider, null=True, on_delete=models.SET_NULL, related_name="+")
    # The user's billing team when the record was written (its budget pays for it).
    team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="+")
    provider_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    api = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=20, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    image_tokens = models.PositiveIntegerField(default=0)
    audio_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    # True when the gateway reported no usage (a stopped stream) and the tokens are estimated.
    estimated = models.BooleanField(default=False)
    # How many upstream exchanges this record stands for: 1, or more for a daily roll-up of
    # records older than the retention's detail period (``rolled_up``).
    requests = models.PositiveIntegerField(default=1)
    rolled_up = models.BooleanField(default=False)
    # What the request was for: a turn's answer, or a chat title written by a model.
    kind = models.CharField(
        max_length=20, choices=[("turn", "Answer"), ("title", "Title")], default="turn"
    )
    # "chat" (a turn) or "api" (a call to /api/v1 with a personal key, ``api_key``).
    source = models.CharField(max_length=10, default="chat", db_index=True)
    api_key = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        # The dashboard sums whole date ranges: these two indexes hold every column it reads,
        # so its GROUP BYs scan an index instead of looking up 100,000 rows one by one.
        indexes = [
            models.Index(fields=["created_at", *_USAGE_GROUPS, *USAGE_SUMS], name="usage_time"),
            models.Index(fields=["user", "created_at", *USAGE_SUMS], name="usage_user_time"),
            models.Index(fields=["provider", "created_at"], name="usage_provider_time"),
            models.Index(fields=["model", "created_at"], name="usage_model_time"),
            # /metrics sums tokens per provider and model at every scrape: an index scan in
            # group order, without a temporary sort of 100,000 rows.
            models.Index(
                fields=["provider_name", "model", "input_tokens", "output_tokens"],
                name="usage_model_tokens",
            ),
            models.Index(
                fields=["team", "created_at", "total_tokens", "cost"], name="usage_team_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.total_tokens} tokens of {self.model} at {self.created_at:%Y-%m-%d %H:%M}"


class UserQuota(models.Model):
    """A user's own limits; an empty field means the default from the site settings."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Empty: the default quota. 0: no tokens at all."
    )
    tokens_per_month = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Empty: the default quota."
    )
    cost_per_month = models.DecimalField(
        "cost budget per month",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Estimated from the model prices. Empty: the default budget.",
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Messages a minute. Empty: the server's RATE_LIMIT_PER_MINUTE. "
        "0: no messages at all.",
    )
    upload_bytes_per_day = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes of files a day. Empty: the server's UPLOAD_BYTES_PER_DAY. 0: no uploads.",
    )
    unlimited_rate = models.BooleanField(
        "no rate limit", default=False, help_text="Send as many messages a minute as they like."
    )
    exempt = models.BooleanField(
        "no limits", default=False, help_text="Ignore every quota and the rate limit."
    )
    billing_team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The team whose budget pays for this user's usage. Empty: the first team "
        "they joined.",
    )

    class Meta:
        verbose_name = "quota"
        # Auditors (chat/services/roles.py) read the usage dashboard without being staff.
        permissions = [("view_usage_dashboard", "Can view the usage dashboard and its CSV")]

    def __str__(self) -> str:
        return f"Quota of {self.user}"


class AuditLogEntry(models.Model):
    """One changed field of one object, by whom and when. Secret values are never stored."""

    at = models.DateTimeField(default=timezone_now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    # created, changed, deleted, re-encrypted; login failed, locked out, lockout cleared
    action = models.CharField(max_length=20)
    object_type = models.CharField(max_length=50)
    object_id = models.CharField(max_length=50, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    field = models.CharField(max_length=100, blank=True)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        what = f" {self.field}" if self.field else ""
        return f"{self.actor_name or 'system'} {self.action} {self.object_repr}{what}"


class ExternalIdentity(models.Model):
    """Where an account signs in: the provider kind, its issuer (OIDC issuer, LDAP server, proxy
    header) and the provider's stable id of the person (OIDC ``sub``, LDAP DN, header value).
    Users are matched by (kind, issuer, subject), never by e-mail. No row: a local account."""

    class Kind(models.TextChoices):
        OIDC = "oidc", "OpenID Connect"
        LDAP = "ldap", "LDAP"
        HEADER = "header", "Proxy header"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=500)
    groups = models.JSONField(default=list, blank=True, help_text="Groups at the last sign-in.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "external identity"
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "issuer", "subject"], name="unique_external_identity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject} ({self.issuer})"


class Announcement(models.Model):
    """A banner staff post for every signed-in user (live over the sockets, and on each page)."""

    class Level(models.TextChoices):
        INFO = "info", "Information"
        WARNING = "warning", "Warning"

    message = models.TextField(max_length=1000)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    starts_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: shown from when it is saved."
    )
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: shown until removed.")
    created_at = models.DateTimeField(auto_now_add=True)
    dismissed_by = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.message[:80]

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must come after the start."})


class BudgetAlert(models.Model):
    """A team budget threshold crossed in one month: the webhook is called once per row."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="budget_alerts")
    month = models.DateField(help_text="First day of the month.")
    metric = models.CharField(max_length=10)  # "cost" or "tokens"
    threshold = models.PositiveSmallIntegerField()  # percent
    created_at = models.DateTimeField(default=timezone_now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "month", "metric", "threshold"], name="unique_budget_alert"
            )
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.metric} {self.threshold}% {self.month:%Y-%m}"


class TeamSpend(models.Model):
    """What a team's members spent in one month, kept as running totals as usage is recorded,
    so the budget check before every turn reads one row instead of summing the records."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="spend")
    month = models.DateField(help_text="First day of the month.")
    tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=6, default=0)

    class Meta:
        ordering = ["-month", "team"]
        constraints = [
            models.UniqueConstraint(fields=["team", "month"], name="unique_team_spend_month")
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.month:%Y-%m}: {self.tokens} tokens, {self.cost}"


class Feedback(models.Model):
    """A user's 👍 or 👎 on one answer, with an optional comment (one per user per turn)."""

    class Rating(models.TextChoices):
        UP = "up", "👍"
        DOWN = "down", "👎"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(max_length=4, choices=Rating.choices)
    comment = models.TextField(blank=True, default="", max_length=2000)
    # The turn's model at the time (the dashboard groups by it; turns keep theirs too).
    model = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        ordering = ["-updated_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "user"], name="one_feedback_per_user_turn")
        ]
        indexes = [models.Index(fields=["model", "rating"], name="feedback_model_rating")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on turn {self.turn_id} by {self.user_id}"


class Prompt(models.Model):
    """A saved prompt; ``{{name}}``, ``{{name|date}}`` and ``{{name|choice:a,b}}`` in its text are
    variables asked for when it is used (chat/services/prompts.py). Shared with one team of the
    owner's, or personal."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="prompts"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="prompts"
    )
    name = models.CharField(max_length=100)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_prompt_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name


class ShareLink(models.Model):
    """A read-only link to a snapshot of a thread: the path from its first turn to ``leaf``
    (later turns never show). Revoking it deletes the row, so the link is a 404 after."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="share_links")
    leaf = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Link to {self.title}"


# -- MCP servers (chat/services/mcp) --------------------------------------------------------------


class McpServer(models.Model):
    """A Model Context Protocol server whose tools the model may call; Switchboard runs them."""

    class Transport(models.TextChoices):
        STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
        SSE = "sse", "HTTP+SSE (older servers)"

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(
        max_length=500, help_text="The server's endpoint, e.g. https://mcp.example/mcp"
    )
    transport = models.CharField(
        max_length=20, choices=Transport.choices, default=Transport.STREAMABLE_HTTP
    )
    # JSON object of HTTP headers (e.g. Authorization), encrypted like provider keys; write-only.
    headers_encrypted = models.TextField(blank=True, default="", editable=False)
    teams = models.ManyToManyField(
        Team,
        blank=True,
        related_name="mcp_servers",
        help_text="Who may use its tools. None chosen: everyone.",
    )
    connect_timeout = models.FloatField(
        default=10.0, help_text="Seconds to connect and list tools."
    )
    call_timeout = models.FloatField(default=60.0, help_text="Seconds one tool call may take.")
    requires_approval = models.BooleanField(
        default=False, help_text="The user approves each call in its card before it runs."
    )
    enabled = models.BooleanField(default=True)
    tools_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        for field in ("connect_timeout", "call_timeout"):
            value = getattr(self, field)
            if value is None or not 0.1 <= value <= 3600:
                raise ValidationError({field: "Between 0.1 and 3600 seconds."})

    @property
    def headers(self) -> dict[str, str]:
        text = crypto.decrypt(self.headers_encrypted)
        return json.loads(text) if text else {}

    def set_headers(self, headers: dict[str, str]) -> None:
        self.headers_encrypted = crypto.encrypt(json.dumps(headers)) if headers else ""


class McpTool(models.Model):
    """A tool as the server last listed it. Kept (``available`` False) when the server drops it,
    so the chats that offer it get a clear error instead of a silently missing tool."""

    server = models.ForeignKey(McpServer, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    input_schema = models.JSONField(default=dict)
    available = models.BooleanField(default=True)
    problem = models.TextField(
        blank=True, default="", help_text="Why it cannot be offered to a model, if it cannot."
    )

    class Meta:
        ordering = ["server__name", "name"]
        verbose_name = "MCP tool"
        constraints = [
            models.UniqueConstraint(fields=["server", "name"], name="unique_mcp_tool_per_server")
        ]

    def __str__(self) -> str:
        return f"{self.server.name}: {self.name}"


class McpCall(models.Model):
    """The audit of one MCP tool call. The arguments only when ``MCP_AUDIT_ARGUMENTS`` is on."""

    created_at = models.DateTimeField(default=timezone_now, db_index=True)
    server = models.ForeignKey(
        McpServer, null=True, on_delete=models.SET_NULL, related_name="calls"
    )
    server_name = models.CharField(max_length=100)
    tool_name = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    turn = models.ForeignKey(Turn, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=20)
    duration_ms = models.PositiveIntegerField(default=0)
    detail = models.TextField(blank=True, default="")
    arguments = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "MCP call"

    def __str__(self) -> str:
        return f"{self.server_name}.{self.tool_name} ({self.status})"


# -- the OpenAI-compatible API (chat/api/) ----------------------------------------------------


class ApiKey(models.Model):
    """A personal key for ``/api/v1``. Only its SHA-256 is stored; ``prefix`` identifies it in
    lists. It acts for ``user`` only, within their quotas (and ``allowed_models``, when set)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model ids this key may use; empty: any allowed."
    )
    created_at = models.DateTimeField(default=timezone_now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiAccess(models.Model):
    """Staff turned the API off (or back on) for one user; no row: on."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_access"
    )
    enabled = models.BooleanField("API enabled", default=True)

    class Meta:
        verbose_name = verbose_name_plural = "API access"

    def __str__(self) -> str:
        return f"API {'on' if self.enabled else 'off'} for {self.user}"


# -- files attached to messages, and files the model answered with -----------------------------


def attachment_upload_to(instance: Attachment, filename: str) -> str:
    """Storage names carry no user input: the attachment's id only (the name is a field)."""
    return f"attachments/{instance.created_at:%Y/%m}/{instance.pk}"


def thumbnail_upload_to(instance: Attachment, filename: str) -> str:
    return f"attachments/{instance.created_at:%Y/%m}/{instance.pk}-thumb"


class Attachment(models.Model):
    """A file: attached by a user to a message (uploaded before it is sent: ``turn`` empty until
    then), or an answer's audio the model returned (``from_model``)."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        DOCUMENT = "document", "Document"
        AUDIO = "audio", "Audio"

    # Not a sequence number: ids in URLs give nothing away (access is checked all the same).
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    turn = models.ForeignKey(
        Turn, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    from_model = models.BooleanField(default=False)
    name = models.CharField(max_length=255)
    # Sniffed from the bytes, never the browser's claim.
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(upload_to=attachment_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(default=0)  # order within its message
    created_at = models.DateTimeField(default=timezone_now)

    class Meta:
        ordering = ["turn_id", "position", "created_at"]
        # The daily upload quota sums a user's bytes since midnight.
        indexes = [models.Index(fields=["owner", "created_at"], name="attachment_owner_time")]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"

    @property
    def is_image(self) -> bool:
        return self.kind == self.Kind.IMAGE

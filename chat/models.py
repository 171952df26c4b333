"""Switchboard's data: providers, threads and the tree of turns in each thread."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from chat import crypto


class Provider(models.Model):
    """An OpenAI-compatible gateway. Its API key is stored encrypted and never rendered."""

    class Api(models.TextChoices):
        RESPONSES = "responses", "Responses (/v1/responses)"
        CHAT = "chat", "Chat Completions (/v1/chat/completions)"

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(max_length=500, help_text="Up to and including /v1.")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    default_api = models.CharField(max_length=20, choices=Api.choices, default=Api.RESPONSES)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
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

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"

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
    api = models.CharField(max_length=20, choices=Provider.Api.choices, blank=True)
    params = models.JSONField(default=dict, blank=True)
    tools = models.ManyToManyField(ToolDefinition, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_preset_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name


class Thread(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads"
    )
    title = models.CharField(max_length=200, default="New chat")
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True)
    # Empty: the provider's default API.
    api = models.CharField(max_length=20, choices=Provider.Api.choices, blank=True)
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
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("chat:thread", args=[self.pk])


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
    api = models.CharField(
        max_length=20, choices=Provider.Api.choices, default=Provider.Api.RESPONSES
    )
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Tool calls of this turn, in order: {call_id, name, arguments, result, status, step}.
    tool_calls = models.JSONField(default=list, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"Turn {self.pk} of thread {self.thread_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def can_retry(self) -> bool:
        return self.status in (self.Status.FAILED, self.Status.INTERRUPTED, self.Status.CANCELLED)

"""``/metrics`` in Prometheus' text format, for operators.

Two sources, chosen so the figures are right however many workers serve the site:

- From the database, at scrape time (cheap aggregate queries; the same on every worker):
  turns by status, running turns, tokens in/out by provider and model, failed logins.
- In-process, for what only the process that saw it knows: open websockets, time to first token
  and total time per provider/model, upstream errors by provider and HTTP status, uploads.
  With several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, cleared
  when the service starts): prometheus-client's multiprocess mode then sums every worker's
  figures, whichever worker answers the scrape (see docs/architecture.md).

The hooks elsewhere are one call each: ``socket_opened`` / ``socket_closed`` (consumer),
``turn_finished`` and ``upstream_failed`` (turn runner).
"""

from __future__ import annotations

import atexit
import hmac
import ipaddress
import os
import time
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from chat.models import AuditLogEntry, Turn, UsageRecord

# Seconds; answers start within a few seconds and may run for minutes.
_FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60)
_TOTAL_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)

# Not in prometheus-client's default registry: each scrape builds its own (see ``registry``).
WEBSOCKETS = Gauge(
    "switchboard_websockets_active",
    "Open thread websockets.",
    registry=None,
    multiprocess_mode="livesum",
)
TIME_TO_FIRST_TOKEN = Histogram(
    "switchboard_time_to_first_token_seconds",
    "Time from the start of a turn to its first streamed token.",
    ["provider", "model"],
    buckets=_FIRST_TOKEN_BUCKETS,
    registry=None,
)
TURN_DURATION = Histogram(
    "switchboard_turn_duration_seconds",
    "Total time of a turn's run, from its start to its end (any status).",
    ["provider", "model"],
    buckets=_TOTAL_BUCKETS,
    registry=None,
)
UPSTREAM_ERRORS = Counter(
    "switchboard_upstream_errors",
    "Failed upstream requests, by provider and HTTP status (or timeout, connection, protocol, "
    "upstream for failures without one).",
    ["provider", "status"],
    registry=None,
)
UPLOADS = Counter(
    "switchboard_uploads", "Files uploaded (there are no uploads yet).", registry=None
)
IN_PROCESS = (WEBSOCKETS, TIME_TO_FIRST_TOKEN, TURN_DURATION, UPSTREAM_ERRORS, UPLOADS)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A worker that exits takes its open sockets with it: drop its live gauge files (its
    # counters and histograms stay, summed into the totals).
    atexit.register(multiprocess.mark_process_dead, os.getpid())

LOGIN_FAILED_ACTION = "login failed"  # login_throttle.record_login_failure's audit entry


# -- hooks ---------------------------------------------------------------------------------------


def socket_opened(consumer) -> None:
    """A thread socket was accepted (``ThreadConsumer.connect``)."""
    consumer._metrics_counted = True
    WEBSOCKETS.inc()


def socket_closed(consumer) -> None:
    """A thread socket closed (``ThreadConsumer.disconnect``); sockets never accepted were not
    counted, and a second call does nothing."""
    if getattr(consumer, "_metrics_counted", False):
        consumer._metrics_counted = False
        WEBSOCKETS.dec()


def _provider_label(provider) -> str:
    return getattr(provider, "name", "") or "(none)"


def turn_finished(provider, state, started: float, *, resumed: bool = False) -> None:
    """A turn runner ended, any status (``TurnRunner.run``). ``state`` is its ``StreamState``
    (``model``, ``first_token_at``), ``started`` its ``time.monotonic()`` at the start. A run
    that resumed a paused turn has no time to first token of its own."""
    labels = (_provider_label(provider), state.model or "(none)")
    if state.first_token_at is not None and not resumed:
        TIME_TO_FIRST_TOKEN.labels(*labels).observe(state.first_token_at - started)
    TURN_DURATION.labels(*labels).observe(time.monotonic() - started)


def upstream_failed(provider, failure) -> None:
    """An upstream request failed (a ``chat.upstream.events.Failed``; ``TurnRunner._consume``)."""
    status = str(failure.status_code) if failure.status_code else failure.kind
    UPSTREAM_ERRORS.labels(_provider_label(provider), status).inc()


# -- the scrape ----------------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Figures computed from the database at each scrape: the same whichever worker answers."""

    def collect(self) -> Iterator:
        turns = GaugeMetricFamily("switchboard_turns", "Stored turns by status.", labels=["status"])
        by_status = dict(
            Turn.objects.order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        for status in Turn.Status.values:
            turns.add_metric([status], by_status.get(status, 0))
        yield turns
        yield GaugeMetricFamily(
            "switchboard_turns_running",
            "Turns generating an answer now (on any worker).",
            value=by_status.get(Turn.Status.IN_PROGRESS, 0),
        )
        tokens = CounterMetricFamily(
            "switchboard_tokens",
            "Tokens used, by provider, model and direction (input or output), from the usage "
            "records (roll-ups of old records included).",
            labels=["provider", "model", "direction"],
        )
        rows = (
            UsageRecord.objects.order_by()
            .values_list("provider_name", "model")
            .annotate(input=Sum("input_tokens"), output=Sum("output_tokens"))
        )
        for provider_name, model, tokens_in, tokens_out in rows:
            labels = [provider_name or "(deleted provider)", model or "(none)"]
            tokens.add_metric([*labels, "input"], tokens_in or 0)
            tokens.add_metric([*labels, "output"], tokens_out or 0)
        yield tokens
        yield CounterMetricFamily(
            "switchboard_login_failures",
            "Failed logins (as recorded in the audit log).",
            value=AuditLogEntry.objects.filter(action=LOGIN_FAILED_ACTION).count(),
        )


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry() -> CollectorRegistry:
    """What one scrape reports: every worker's in-process figures (multiprocess mode) or this
    process's (a single worker), and the database's."""
    # No auto_describe: it would run the database collector once more just to learn its names.
    scrape = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(scrape)
    else:
        for metric in IN_PROCESS:
            scrape.register(metric)
    scrape.register(DatabaseCollector())
    return scrape


def render() -> bytes:
    return generate_latest(registry())


# -- access ----------------------------------------------------------------------------------------


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.METRICS_ALLOWED_IPS]


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why ``request`` may not read the metrics (a 401 or 403 response), or None. With both
    METRICS_TOKEN and METRICS_ALLOWED_IPS set both must match; with neither, nobody may."""
    token, networks = settings.METRICS_TOKEN, allowed_networks()
    if not token and not networks:
        return HttpResponse(
            "Metrics are off: set METRICS_TOKEN and/or METRICS_ALLOWED_IPS.\n",
            status=403,
            content_type="text/plain",
        )
    if networks:
        from chat.services.login_throttle import client_ip

        try:
            address = ipaddress.ip_address(client_ip(request))
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks):
            return HttpResponse(
                "Your address may not read the metrics.\n", status=403, content_type="text/plain"
            )
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            response = HttpResponse(
                "A bearer token is required.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


@login_not_required
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refused = refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)

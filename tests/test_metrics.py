"""``/metrics``: Prometheus text, readable only with the token / from an allowed address, with
figures that match what happened (a known number of turns, failures, logins, sockets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Sum
from django.test import AsyncClient, Client
from prometheus_client.parser import text_string_to_metric_families

from chat import metrics
from chat.models import Turn
from chat.services.turns import launch, registry
from tests.ws import ORIGIN, socket

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "s3cret-metrics-token"


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


async def scrape() -> dict:
    response = await AsyncClient().get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


async def run_turn(user, thread, text: str) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def test_figures_after_a_known_number_of_turns(token, user, make_thread, cookie_of):
    thread = await sync_to_async(make_thread)(user)
    before = await scrape()
    for text in ("one", "two", "three"):
        await run_turn(user, thread, text)
    await run_turn(user, thread, "then #fault=500")
    await run_turn(user, thread, "then #fault=429")
    browser = AsyncClient()
    for _ in range(2):
        await browser.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]

    after = await scrape()

    labels = {"provider": "Demo", "model": "demo-chat"}
    assert value(after, "switchboard_turns", status="completed") == 3
    assert value(after, "switchboard_turns", status="failed") == 2
    assert value(after, "switchboard_turns_running") == 0
    sums = await Turn.objects.aaggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    assert sums["i"] > 0
    assert value(after, "switchboard_tokens_total", **labels, direction="input") == sums["i"]
    assert value(after, "switchboard_tokens_total", **labels, direction="output") == sums["o"]

    def grew(name: str, **extra) -> float:
        return value(after, name, **extra) - value(before, name, **extra)

    # Only answers that streamed a token have a time to first token; every run has a total.
    assert grew("switchboard_time_to_first_token_seconds_count", **labels) == 3
    assert grew("switchboard_turn_duration_seconds_count", **labels) == 5
    assert grew("switchboard_turn_duration_seconds_bucket", **labels, le="+Inf") == 5
    assert grew("switchboard_upstream_errors_total", provider="Demo", status="500") == 1
    assert grew("switchboard_upstream_errors_total", provider="Demo", status="429") == 1
    assert grew("switchboard_login_failures_total") == 2
    assert grew("switchboard_websockets_active") == 1
    assert value(after, "switchboard_uploads_total") == 0

    await ws.disconnect()
    assert value(await scrape(), "switchboard_websockets_active") == value(
        before, "switchboard_websockets_active"
    )


def test_refused_without_the_token(token, client: Client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": TOKEN}).status_code == 401
    ok = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and b"switchboard_turns" in ok.content


def test_refused_from_an_address_not_allowed(settings, client: Client):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.168.1.7"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.7").status_code == 200


def test_token_and_allowlist_together_need_both(token, settings, client: Client):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers=bearer).status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.1").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.1", headers=bearer).status_code == 200


def test_off_until_configured_and_never_a_login_redirect(settings, client: Client):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content


WORKER = """
import sys, django
django.setup()
from types import SimpleNamespace
from chat import metrics
sockets = [SimpleNamespace() for _ in range({sockets})]
for sock in sockets:
    metrics.socket_opened(sock)
metrics.upstream_failed(SimpleNamespace(name="Demo"), SimpleNamespace(status_code=502, kind="http"))
print("ready", flush=True)
sys.stdin.read()  # until the test lets it exit
"""


def test_several_workers_are_summed_in_multiprocess_mode(tmp_path, monkeypatch, db):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = os.environ | {
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_SECRET_KEY": "x" * 50,
        "SWITCHBOARD_DATA_DIR": str(tmp_path),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER.format(sockets=count)],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for count in (2, 3)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        live = parse(metrics.render().decode())
        assert value(live, "switchboard_websockets_active") == 5
        assert value(live, "switchboard_upstream_errors_total", provider="Demo", status="502") == 2
        assert value(live, "switchboard_turns", status="completed") == 0  # from the database
    finally:
        for worker in workers:
            worker.communicate("", timeout=30)
    ended = parse(metrics.render().decode())
    # The workers are gone, with their sockets; what they counted stays.
    assert value(ended, "switchboard_websockets_active") == 0
    assert value(ended, "switchboard_upstream_errors_total", provider="Demo", status="502") == 2

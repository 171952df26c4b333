"""Team budgets: spend counts against the billing team; the warning threshold shows a banner
and calls the webhook once per threshold per month; at 100 % turns are refused in words."""

import datetime as dt
import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from chat.models import BudgetAlert, Team, Turn, UsageRecord, UserQuota
from chat.services import budgets
from chat.services.refusals import TurnRejected
from chat.services.turns import launch, registry

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A local incoming-webhook endpoint: records each JSON body; answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/budget"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, within: float = 10) -> list[dict]:
        deadline = time.monotonic() + within
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # and nothing more arrives
        return self.bodies


@pytest.fixture
def receiver(settings):
    hook = Receiver()
    settings.BUDGET_WEBHOOK_URL = hook.url
    yield hook
    hook.server.shutdown()


@pytest.fixture
def research(user):
    team = Team.objects.create(name="Research", token_budget_per_month=1000)
    team.members.add(user)
    return team


def spend(user, tokens: int, cost: str = "0", when: dt.datetime | None = None) -> UsageRecord:
    return UsageRecord.objects.create(
        user=user, total_tokens=tokens, cost=Decimal(cost), created_at=when or timezone.now()
    )


def send(user, thread, text: str = "Hello") -> Turn:
    async def go() -> Turn:
        turn = await launch.start_turn(user, thread.pk, text)
        await registry.wait_for(turn.pk)
        return await Turn.objects.aget(pk=turn.pk)

    return async_to_sync(go)()


def test_usage_counts_against_the_first_team_unless_staff_set_another(user, research):
    assert spend(user, 10).team == research
    later = Team.objects.create(name="Aardvarks")  # joined later, first by name
    later.members.add(user)
    assert spend(user, 10).team == research
    UserQuota.objects.create(user=user, billing_team=later)
    assert spend(user, 10).team == later


def test_thresholds_call_the_webhook_once_each_per_month(user, research, receiver, make_thread):
    spend(user, 700)
    assert receiver.wait_for(1, within=0.3) == []
    spend(user, 150)  # 85 %: the warning threshold
    bodies = receiver.wait_for(1)
    assert len(bodies) == 1 and set(bodies[0]) == {"text"}
    assert bodies[0]["text"].startswith("Budget alert: Research has used 85 % of its monthly token")
    assert "150 tokens left of 1,000 tokens" in bodies[0]["text"]
    spend(user, 50)  # 90 %: the same threshold, no second call
    budgets.check(user)  # a turn start looks too: still nothing new
    assert len(receiver.wait_for(2, within=0.5)) == 1
    spend(user, 100)  # 100 %
    bodies = receiver.wait_for(2)
    assert len(bodies) == 2 and "has used all of its monthly token budget" in bodies[1]["text"]
    alerts = BudgetAlert.objects.order_by("threshold")
    assert [(a.metric, a.threshold) for a in alerts] == [("tokens", 80), ("tokens", 100)]
    assert all(a.delivered_at and not a.error for a in alerts)

    # The turn is refused, naming the budget and when it resets.
    with pytest.raises(TurnRejected) as refused:
        send(user, make_thread(user))
    message = str(refused.value)
    first_of_next_month = (timezone.localdate().replace(day=1) + dt.timedelta(days=32)).replace(
        day=1
    )
    assert message == (
        "Your team Research has used all of its monthly token budget of 1,000 tokens. "
        f"Messages can be sent again when it resets on {first_of_next_month:%-d %B %Y}."
    )
    assert not Turn.objects.exists()

    # Next month: the spend starts again, and so do the alerts.
    next_month = timezone.make_aware(
        dt.datetime.combine(first_of_next_month, dt.time(12)), timezone.get_current_timezone()
    )
    budgets.check(user, now=next_month)  # allowed
    spend(user, 900, when=next_month)
    budgets.check(user, now=next_month)
    assert len(receiver.wait_for(3)) == 3
    assert BudgetAlert.objects.filter(month=first_of_next_month).count() == 1


def test_a_failing_webhook_is_recorded_and_logged_not_raised(user, research, receiver, caplog):
    receiver.status = 500
    spend(user, 850)
    assert len(receiver.wait_for(1)) == 1
    deadline = time.monotonic() + 5
    while not BudgetAlert.objects.get().error and time.monotonic() < deadline:
        time.sleep(0.02)
    alert = BudgetAlert.objects.get()
    assert "500" in alert.error and alert.delivered_at is None
    assert "budget webhook failed" in caplog.text


def test_no_webhook_url_still_records_the_threshold(user, research, settings):
    settings.BUDGET_WEBHOOK_URL = ""
    spend(user, 1000)
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [80, 100]


def test_cost_budget_and_a_zero_budget(user, research, make_thread):
    research.token_budget_per_month = None
    research.cost_budget_per_month = Decimal("10.00")
    research.save()
    spend(user, 5, cost="9.99")
    budgets.check(user)  # under
    spend(user, 5, cost="0.01")
    with pytest.raises(TurnRejected, match=r"its monthly cost budget of \$10\.00\. Messages"):
        budgets.check(user)
    research.cost_budget_per_month = Decimal(0)
    research.save()
    with pytest.raises(
        TurnRejected, match=r"^Your team Research has a monthly cost budget of \$0\.00, so no"
    ):
        budgets.check(user)


def test_the_warning_threshold_is_a_setting(user, research, settings):
    settings.BUDGET_WARNING_PERCENT = 50
    spend(user, 550)
    assert list(BudgetAlert.objects.values_list("threshold", flat=True)) == [50]


def test_members_see_the_banner_and_staff_the_dashboard(
    client, user, other_user, research, staff, settings
):
    settings.BUDGET_WEBHOOK_URL = ""
    client.force_login(user)
    assert "budget-banner" not in client.get("/").content.decode()
    spend(user, 850)
    html = client.get("/").content.decode()
    banner = "Team budget: Research has used 85 % of its monthly token budget: 150 tokens left"
    assert banner in html
    client.force_login(other_user)  # not in the team
    assert "budget-banner" not in client.get("/").content.decode()
    client.force_login(staff)
    dashboard = client.get("/admin/usage/").content.decode()
    assert "Research has used 85 %" in dashboard
    teams = client.get("/admin/usage/teams/").content.decode()
    assert "Research" in teams and 'value="850"' in teams and 'max="1000"' in teams


def test_a_real_turn_is_billed_to_the_team_month(user, research, make_thread):
    from chat.models import TeamSpend

    turn = send(user, make_thread(user))
    record = UsageRecord.objects.get(turn=turn)
    assert record.team == research and record.total_tokens > 0
    spend_row = TeamSpend.objects.get(team=research)
    assert spend_row.month == timezone.localdate().replace(day=1)
    assert spend_row.tokens == record.total_tokens
    # The banner's figures come from it.
    (line,) = budgets.lines_for(user)
    assert line.used == record.total_tokens and line.limit == 1000

"""Quotas, the rate limit and model switches: refused before any upstream call, in plain words."""

import datetime as dt
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from chat.models import ModelSetting, SiteSettings, Turn, UsageRecord, UserQuota
from chat.services import providers, quotas
from chat.services.refusals import TurnRejected
from chat.services.turns import launch, registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


def send(user, thread, text: str = "Hello") -> Turn:
    async def go() -> Turn:
        turn = await launch.start_turn(user, thread.pk, text)
        await registry.wait_for(turn.pk)
        return await Turn.objects.aget(pk=turn.pk)

    return async_to_sync(go)()


def set_defaults(**fields) -> None:
    SiteSettings.objects.update_or_create(pk=1, defaults=fields)


def spend(user, tokens: int, *, cost: str = "0", when: dt.datetime | None = None) -> None:
    UsageRecord.objects.create(
        user=user,
        total_tokens=tokens,
        input_tokens=tokens,
        cost=Decimal(cost),
        created_at=when or timezone.now(),
    )


def test_daily_quota_refuses_the_next_message_without_calling_upstream(user, thread, demo_requests):
    set_defaults(default_tokens_per_day=50)
    first = send(user, thread)
    assert first.status == Turn.Status.COMPLETED and first.total_tokens > 50
    sent = len(demo_requests())
    used_up = r"You have used all 50 tokens of your daily quota \(\d+ tokens used today\)"
    with pytest.raises(TurnRejected, match=used_up) as refused:
        send(user, thread, "Another one")
    assert "resets on" in str(refused.value)
    assert len(demo_requests()) == sent  # refused before any upstream call
    assert Turn.objects.filter(thread=thread).count() == 1  # and no turn was created


def test_monthly_token_quota(user, thread):
    set_defaults(default_tokens_per_month=1000)
    spend(user, 999)
    send(user, thread)  # 1 token left: still allowed
    with pytest.raises(TurnRejected, match="used all 1,000 tokens of your monthly quota"):
        send(user, thread)


def test_monthly_cost_budget(user, thread):
    UserQuota.objects.create(user=user, cost_per_month=Decimal("5.00"))
    spend(user, 10, cost="4.99")
    send(user, thread)
    spend(user, 10, cost="0.01")
    with pytest.raises(
        TurnRejected, match=r"used all \$5\.00 of your monthly budget \(\$5\.00 spent this month\)"
    ):
        send(user, thread)


def test_yesterdays_usage_does_not_count_today(user, thread):
    set_defaults(default_tokens_per_day=100)
    spend(user, 5000, when=timezone.now() - dt.timedelta(days=1, hours=1))
    assert send(user, thread).status == Turn.Status.COMPLETED


def test_a_users_own_quota_overrides_the_default(user, other_user, make_thread):
    set_defaults(default_tokens_per_day=10)
    UserQuota.objects.create(user=user, tokens_per_day=1_000_000)
    spend(user, 500)
    spend(other_user, 500)
    send(user, make_thread(user))
    with pytest.raises(TurnRejected, match="used all 10 tokens of your daily quota"):
        send(other_user, make_thread(other_user))


def test_zero_means_no_tokens_and_exempt_means_no_limits(user, thread):
    quota = UserQuota.objects.create(user=user, tokens_per_day=0)
    with pytest.raises(
        TurnRejected,
        match=r"^Your daily quota is 0 tokens, so you cannot send messages\. Ask an admin",
    ):
        send(user, thread)
    quota.exempt = True
    quota.save()
    assert send(user, thread).status == Turn.Status.COMPLETED


def test_staff_are_exempt_only_when_configured(make_user, make_thread):
    admin = make_user("boss", staff=True)
    set_defaults(default_tokens_per_day=0)
    with pytest.raises(TurnRejected, match="daily quota"):
        send(admin, make_thread(admin))
    set_defaults(default_tokens_per_day=0, staff_exempt=True)
    assert send(admin, make_thread(admin)).status == Turn.Status.COMPLETED


def test_rate_limit_per_minute(user, thread, settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    send(user, thread)
    send(user, thread)
    with pytest.raises(TurnRejected, match=r"too quickly: the limit is 2 a minute. Try again in"):
        send(user, thread)
    # A minute later the window has moved on.
    Turn.objects.filter(author=user).update(created_at=timezone.now() - dt.timedelta(seconds=61))
    assert send(user, thread).status == Turn.Status.COMPLETED


def test_a_users_own_rate_limit_overrides_the_setting(user, thread, settings):
    settings.RATE_LIMIT_PER_MINUTE = 1
    quota = UserQuota.objects.create(user=user, unlimited_rate=True)  # "no rate limit"
    for _ in range(3):
        send(user, thread)
    assert Turn.objects.filter(author=user).count() == 3
    quota.unlimited_rate, quota.requests_per_minute = False, 5
    quota.save()
    send(user, thread)  # 4 in the minute: within this user's 5
    assert Turn.objects.filter(author=user).count() == 4


def test_blank_rate_limit_is_the_default_and_zero_means_no_messages(user, thread, settings):
    settings.RATE_LIMIT_PER_MINUTE = 1
    quota = UserQuota.objects.create(user=user)  # blank: the server's 1 a minute
    send(user, thread)
    with pytest.raises(TurnRejected, match="the limit is 1 a minute"):
        send(user, thread)
    Turn.objects.all().delete()
    quota.requests_per_minute = 0
    quota.save()
    with pytest.raises(
        TurnRejected, match=r"^Your rate limit is 0 messages a minute, so you cannot send"
    ):
        send(user, thread)
    assert not Turn.objects.exists()


def test_the_refusal_reaches_the_new_chat_page(client, user, provider):
    set_defaults(default_tokens_per_day=0)
    client.force_login(user)
    response = client.post(
        "/threads/new/",
        {"model": f"{provider.pk}:demo-chat", "message": "hi"},
        HTTP_HX_REQUEST="true",
    )
    assert "Your daily quota is 0 tokens, so you cannot send messages." in response.content.decode()
    assert not Turn.objects.exists()


# -- models staff turned off ----------------------------------------------------------------------


def test_disabled_models_are_hidden_and_refused(user, thread, provider):
    ModelSetting.objects.create(provider=provider, model="demo-chat", enabled=False)
    ModelSetting.objects.create(provider=provider, model="gpt-5.4", display_name="GPT Five")
    listed = async_to_sync(providers.models_of)(provider)
    assert "demo-chat" not in listed.models and "demo-reasoner" in listed.models
    assert (f"{provider.pk}:gpt-5.4", "GPT Five") in listed.options
    with pytest.raises(TurnRejected, match="“demo-chat” has been turned off by an administrator"):
        send(user, thread)


def test_the_model_picker_shows_only_enabled_models(client, user, provider):
    ModelSetting.objects.create(provider=provider, model="demo-reasoner", enabled=False)
    ModelSetting.objects.create(provider=provider, model="gpt-5.4", display_name="GPT Five")
    client.force_login(user)
    html = client.get("/").content.decode()
    assert f'value="{provider.pk}:demo-chat"' in html
    assert f'value="{provider.pk}:demo-reasoner"' not in html
    assert ">GPT Five</option>" in html


# -- the user's own page --------------------------------------------------------------------------


def test_my_usage_page_shows_what_is_left(client, user, other_user):
    set_defaults(default_tokens_per_day=10_000, default_cost_per_month=Decimal("20"))
    spend(user, 2_500, cost="1.25")
    spend(other_user, 7_000, cost="9")
    client.force_login(user)
    html = client.get("/usage/").content.decode()
    assert "2,500 of 10,000 tokens used, <strong>7,500 left</strong>" in html
    assert "$1.25 of $20.00 used, <strong>$18.75 left</strong>" in html
    assert "Tokens this month" in html and "no limit" in html
    assert "up to 20" in html  # the rate limit (RATE_LIMIT_PER_MINUTE's default)


def test_quota_lines_and_resets(user, settings):
    set_defaults(default_tokens_per_month=100)
    spend(user, 150)
    now = timezone.now()
    _, lines = quotas.quota_lines(user, now)
    month = next(line for line in lines if line.name == "Tokens this month")
    assert (month.limit, month.used, month.remaining, month.percent) == (100, 150, 0, 100)
    day_line = lines[0]
    assert day_line.limit is None and day_line.remaining is None
    assert day_line.resets > now and day_line.resets - now <= dt.timedelta(days=1)
    assert timezone.localtime(month.resets).day == 1


def test_the_check_hands_back_the_models_default_parameters(user, provider):
    ModelSetting.objects.create(
        provider=provider, model="demo-chat", default_params={"temperature": 0.2}
    )
    assert quotas.check(user, provider, "demo-chat") == {"temperature": 0.2}
    assert quotas.check(user, provider, "unconfigured") == {}
    SiteSettings.objects.all().delete()  # no site settings row yet: no default limits
    UserQuota.objects.create(user=user, tokens_per_day=0)
    with pytest.raises(TurnRejected, match="daily quota is 0 tokens"):
        quotas.check(user, provider, "demo-chat")


def test_the_usage_page_words_a_zero_rate_limit(client, user):
    UserQuota.objects.create(user=user, requests_per_minute=0)
    client.force_login(user)
    html = client.get("/usage/").content.decode()
    assert "none: ask an administrator" in html and "no limit" not in html.split("Messages a")[1]

"""Image and audio tokens: read from both usage schemas, summed over a tool loop, recorded, and
shown on the usage pages and in the CSV (as its last columns, so existing readers keep working)."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from chat.models import UsageRecord
from chat.services import usage
from chat.upstream.events import Usage

# The CSV's columns before image and audio tokens were added: they keep their places.
CSV_COLUMNS_BEFORE_MEDIA = [
    "time",
    "user",
    "thread_id",
    "turn_id",
    "step",
    "provider",
    "model",
    "api",
    "status",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "estimated",
    "requests",
    "kind",
]


def test_image_and_audio_tokens_are_read_from_both_usage_schemas():
    responses = Usage.from_payload(
        {
            "input_tokens": 100,
            "output_tokens": 20,
            "input_tokens_details": {"cached_tokens": 0, "image_tokens": 85},
        }
    )
    chat = Usage.from_payload(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "prompt_tokens_details": {"image_tokens": 170, "audio_tokens": 5},
            "completion_tokens_details": {"audio_tokens": 20, "reasoning_tokens": 0},
        }
    )
    assert (responses.image_tokens, responses.audio_tokens) == (85, 0)
    assert (chat.image_tokens, chat.audio_tokens) == (170, 25)  # heard and spoken
    assert (responses + chat).image_tokens == 255 and (responses + chat).input_tokens == 200


@pytest.fixture
def media_records(user, provider):
    common = {"user": user, "provider": provider, "provider_name": "Demo", "model": "demo-chat"}
    return UsageRecord.objects.bulk_create(
        [
            UsageRecord(input_tokens=90, total_tokens=100, image_tokens=85, **common),
            UsageRecord(output_tokens=30, total_tokens=40, audio_tokens=20, **common),
            UsageRecord(input_tokens=5, total_tokens=5, cost=Decimal("0.01"), **common),
        ]
    )


def test_csv_adds_image_and_audio_tokens_as_its_last_columns(media_records):
    lines = "".join(usage.csv_lines(usage.UsageFilters.default()))
    rows = list(csv.reader(io.StringIO(lines)))
    assert rows[0] == [*CSV_COLUMNS_BEFORE_MEDIA, "image_tokens", "audio_tokens"]
    assert sorted((row[-2], row[-1]) for row in rows[1:]) == [("0", "0"), ("0", "20"), ("85", "0")]


def test_usage_pages_show_image_and_audio_tokens(staff_client, media_records):
    html = staff_client.get("/admin/usage/").content.decode()
    assert '<small id="total-image-tokens">85 for images</small>' in html
    assert '<small id="total-audio-tokens">20 audio</small>' in html
    assert '<th scope="col">Image tokens</th><th scope="col">Audio tokens</th>' in html
    assert "<td>85</td><td>20</td>" in html  # the by-user row sums both


def test_members_usage_page_shows_their_image_tokens(client, user, media_records):
    client.force_login(user)
    html = client.get("/usage/").content.decode()
    assert "<td>85</td><td>20</td>" in html


def test_report_totals_sum_image_and_audio_tokens(media_records):
    totals = usage.totals(UsageRecord.objects.filter(created_at__lte=timezone.now()))
    assert (totals["image_tokens"], totals["audio_tokens"]) == (85, 20)


def test_rolled_up_old_records_keep_their_image_and_audio_tokens(media_records):
    from chat.services import retention

    old = timezone.now() - dt.timedelta(days=400)
    UsageRecord.objects.update(created_at=old)
    assert retention._roll_up(retention.detailed_usage_before(30)) == (3, 1)
    (rolled,) = UsageRecord.objects.all()
    assert rolled.rolled_up and (rolled.image_tokens, rolled.audio_tokens) == (85, 20)

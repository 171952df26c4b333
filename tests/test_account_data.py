"""A user's own data: the "Download my data" zip and "Delete my account"."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from chat.models import AuditLogEntry, Thread, ThreadShare, Turn, UsageRecord
from chat.services import usage


def _turn(thread, author, question: str, answer: str) -> Turn:
    turn = Turn.objects.create(
        thread=thread,
        author=author,
        user_text=question,
        output_text=answer,
        status=Turn.Status.COMPLETED,
        model=thread.model,
        input_tokens=11,
        output_tokens=22,
        total_tokens=33,
    )
    thread.current_turn = turn
    thread.save()
    return turn


def _record(user, provider, model: str, tokens: int) -> UsageRecord:
    return UsageRecord.objects.create(
        user=user,
        provider=provider,
        provider_name=provider.name,
        model=model,
        api="responses",
        status="completed",
        input_tokens=tokens,
        output_tokens=tokens,
        total_tokens=tokens * 2,
        cost=Decimal("0.5"),
    )


@pytest.fixture
def alice_data(user, other_user, make_thread, provider):
    first = make_thread(user, title="Holiday plans")
    _turn(first, user, "Where to go in May?", "Lisbon is lovely in May.")
    second = make_thread(user, title="Maths")
    _turn(second, user, "What is 6 * 7?", "**42**")
    theirs = make_thread(other_user, title="Mallory's own")
    _turn(theirs, other_user, "secret question", "secret answer")
    ThreadShare.objects.create(thread=theirs, user=user, access="collaborate")
    written_by_alice = _turn(theirs, user, "alice asks here", "an answer for alice")
    ThreadShare.objects.create(thread=first, user=other_user)
    _record(user, provider, "demo-chat", 100)
    _record(user, provider, "demo-chat", 40)
    _record(other_user, provider, "demo-chat", 7)
    return {"threads": [first, second], "theirs": theirs, "written": written_by_alice}


def test_download_contains_every_own_chat_as_json_and_markdown_and_the_usage_csv(
    logged_in_client, alice_data
):
    response = logged_in_client.get(reverse("download-my-data"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = set(archive.namelist())
    first, second = alice_data["threads"]
    assert {
        f"chats/{first.pk}-holiday-plans.json",
        f"chats/{first.pk}-holiday-plans.md",
        f"chats/{second.pk}-maths.json",
        f"chats/{second.pk}-maths.md",
        "usage.csv",
        "README.txt",
    } == names
    data = json.loads(archive.read(f"chats/{first.pk}-holiday-plans.json"))
    assert data["title"] == "Holiday plans"
    assert [(t["user"], t["answer"]) for t in data["turns"]] == [
        ("Where to go in May?", "Lisbon is lovely in May.")
    ]
    assert "What is 6 * 7?" in archive.read(f"chats/{second.pk}-maths.md").decode()
    # Only her own chats: the one shared with her is someone else's data.
    assert not any("secret" in archive.read(name).decode() for name in names)
    rows = list(csv.reader(io.StringIO(archive.read("usage.csv").decode())))
    assert rows[0] == list(usage.CSV_COLUMNS)
    assert sorted(int(row[rows[0].index("total_tokens")]) for row in rows[1:]) == [80, 200]
    assert {row[1] for row in rows[1:]} == {"alice"}


def test_account_page_lists_both_actions(logged_in_client):
    page = logged_in_client.get(reverse("account")).content.decode()
    assert reverse("download-my-data") in page
    assert reverse("delete-my-account") in page


@pytest.mark.parametrize("typed", ["", "alic", "wrong password", " "])
def test_delete_needs_the_username_or_password(logged_in_client, user, alice_data, typed):
    response = logged_in_client.post(reverse("delete-my-account"), {"confirm": typed})
    assert response.status_code == 400
    assert get_user_model().objects.filter(pk=user.pk).exists()
    assert Thread.objects.filter(owner=user).count() == 2


@pytest.mark.parametrize("typed", ["alice", "correct horse 42"])
def test_delete_removes_account_chats_and_shares_and_keeps_usage_anonymised(
    logged_in_client, user, other_user, alice_data, typed
):
    report_before = usage.by_model(UsageRecord.objects.all())
    response = logged_in_client.post(reverse("delete-my-account"), {"confirm": typed})
    assert response.status_code == 302
    assert not get_user_model().objects.filter(username="alice").exists()
    assert not Thread.objects.filter(pk__in=[t.pk for t in alice_data["threads"]]).exists()
    assert not ThreadShare.objects.filter(thread__owner=other_user).exists()
    assert not Turn.objects.filter(thread__title="Holiday plans").exists()
    # Her message in Mallory's chat stays, without her name.
    assert Turn.objects.get(pk=alice_data["written"].pk).author is None
    # Usage stays: the same totals per model and provider, hers no longer linked to anyone.
    assert UsageRecord.objects.count() == 3
    assert UsageRecord.objects.filter(user=None).count() == 2
    assert usage.by_model(UsageRecord.objects.all()) == report_before
    labels = {row["label"] for row in usage.by_user(UsageRecord.objects.all())}
    assert labels == {"(deleted user)", "mallory"}
    entry = AuditLogEntry.objects.get(action="deleted account")
    assert entry.actor_name == "alice" and "2 usage records kept anonymised" in entry.new_value
    # Signed out: the next page asks to log in.
    assert logged_in_client.get(reverse("account")).status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_deleting_the_account_closes_its_open_pages(user, make_thread, cookie_of):
    from asgiref.sync import sync_to_async

    from chat.services import account_data
    from tests.ws import ORIGIN, socket

    thread = await sync_to_async(make_thread)(user)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await sync_to_async(account_data.delete_account)(user)
    while True:
        output = await ws.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
    # Closed for good (the 4400s: the page does not reconnect): its chat is gone (4403) or
    # its session's user (4401), whichever is noticed first.
    assert output["code"] in (4401, 4403)

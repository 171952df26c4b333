"""👍/👎 and comments on answers: who may give them, changing them, and what staff see
(dashboard per model with links to the turns they may see, feedback CSV, usage CSV kind)."""

import csv
import io

import pytest
from django.urls import reverse

from chat.models import Feedback, Thread, ThreadShare, Turn, UsageRecord


@pytest.fixture
def answered(user, provider):
    thread = Thread.objects.create(owner=user, provider=provider, model="gpt-5.4", title="Rivers")
    turn = Turn.objects.create(
        thread=thread,
        author=user,
        user_text="Longest river?",
        output_text="The Nile.",
        status=Turn.Status.COMPLETED,
        model="gpt-5.4",
        provider=provider,
    )
    Thread.objects.filter(pk=thread.pk).update(current_turn=turn)
    return turn


def url(turn: Turn) -> str:
    return reverse("chat:feedback", args=[turn.thread_id, turn.pk])


def press(client, turn: Turn, **data) -> str:
    return client.post(url(turn), data, HTTP_HX_REQUEST="true").content.decode()


def test_thumbs_and_comment_are_stored_and_changeable(client, user, answered):
    client.force_login(user)
    html = press(client, answered, rating="up")
    assert 'value="up" aria-pressed="true"' in html and "Add a comment" in html
    press(client, answered, rating="up", comment="  Short and right.  ")
    press(client, answered, rating="down")  # a thumb keeps the comment
    given = Feedback.objects.get(turn=answered, user=user)
    assert (given.rating, given.comment, given.model) == ("down", "Short and right.", "gpt-5.4")
    html = press(client, answered, rating="down")  # pressed again: taken back
    assert not Feedback.objects.filter(turn=answered).exists()
    assert 'aria-pressed="true"' not in html


def test_the_page_shows_my_own_feedback(client, user, other_user, answered):
    ThreadShare.objects.create(thread=answered.thread, user=other_user, access="read")
    Feedback.objects.create(turn=answered, user=other_user, rating="down", model="gpt-5.4")
    client.force_login(user)
    press(client, answered, rating="up")
    page = client.get(answered.thread.get_absolute_url()).content.decode()
    box = page.split(f'id="feedback-{answered.pk}"')[1].split("</div>")[0]
    assert 'value="up" aria-pressed="true"' in box and 'value="down" aria-pressed="false"' in box


def test_a_reader_may_rate_a_stranger_may_not(client, other_user, make_user, answered):
    ThreadShare.objects.create(thread=answered.thread, user=other_user, access="read")
    client.force_login(other_user)
    press(client, answered, rating="down", comment="Too short")
    assert Feedback.objects.get(user=other_user).comment == "Too short"
    client.force_login(make_user("stranger"))
    assert client.post(url(answered), {"rating": "up"}).status_code == 404
    wrong_thread = reverse("chat:feedback", args=[answered.thread_id + 1000, answered.pk])
    assert client.post(wrong_thread, {"rating": "up"}).status_code == 404


def test_bad_feedback_is_refused_with_a_reason(client, user, answered):
    client.force_login(user)
    assert "Choose 👍 or 👎." in press(client, answered, rating="meh")
    press(client, answered, rating="up", comment="fine")
    html = press(client, answered, rating="up", comment="x" * 2001)
    assert "at most 2000 characters" in html
    assert Feedback.objects.get(turn=answered).comment == "fine"  # nothing lost
    failed = Turn.objects.create(
        thread=answered.thread, author=user, user_text="?", status=Turn.Status.FAILED
    )
    assert "Only a finished answer can be rated." in press(client, failed, rating="up")


def test_staff_see_feedback_per_model_with_links_to_turns_they_may_see(
    staff_client, staff, user, other_user, make_user, answered, provider
):
    Feedback.objects.create(turn=answered, user=user, rating="up", comment="Great", model="gpt-5.4")
    Feedback.objects.create(turn=answered, user=other_user, rating="down", model="gpt-5.4")
    mine = Thread.objects.create(owner=staff, provider=provider, title="Staff chat")
    own_turn = Turn.objects.create(
        thread=mine,
        author=staff,
        user_text="q",
        output_text="a",
        model="demo-chat",
        status=Turn.Status.COMPLETED,
    )
    Feedback.objects.create(turn=own_turn, user=make_user("carol"), rating="up", model="demo-chat")
    Feedback.objects.create(turn=own_turn, user=staff, rating="up", model="demo-chat")
    html = staff_client.get(reverse("staff-usage")).content.decode()
    table = html.split('id="feedback-by-model"')[1].split("</table>")[0]
    assert '<th scope="row">gpt-5.4</th><td>1</td><td>1</td><td>2</td><td>50 %</td>' in table
    assert '<th scope="row">demo-chat</th><td>2</td><td>0</td><td>2</td><td>100 %</td>' in table
    latest = html.split('id="latest-feedback"')[1].split("</table>")[0]
    assert f'href="/t/{mine.pk}/#turn-{own_turn.pk}"' in latest  # a chat staff may see
    assert f"/t/{answered.thread_id}/" not in latest and "not shared with you" in latest
    assert "Great" in latest


def test_feedback_csv_for_staff_only(staff_client, client, user, answered):
    Feedback.objects.create(
        turn=answered, user=user, rating="up", comment="=cmd()", model="gpt-5.4"
    )
    response = staff_client.get(reverse("staff-feedback-csv"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "time",
        "user",
        "rating",
        "comment",
        "model",
        "provider",
        "thread_id",
        "turn_id",
    ]
    assert rows[1][1:] == [
        "alice",
        "up",
        "'=cmd()",
        "gpt-5.4",
        "Demo",
        str(answered.thread_id),
        str(answered.pk),
    ]
    client.force_login(user)
    assert client.get(reverse("staff-feedback-csv")).status_code == 403


def test_usage_csv_says_what_each_request_was_for(staff_client, user, answered):
    UsageRecord.objects.create(user=user, model="gpt-5.4-mini", total_tokens=12, kind="title")
    UsageRecord.objects.create(user=user, model="gpt-5.4", total_tokens=40)
    response = staff_client.get(reverse("staff-usage-csv"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted((row["model"], row["kind"]) for row in rows) == [
        ("gpt-5.4", "turn"),
        ("gpt-5.4-mini", "title"),
    ]

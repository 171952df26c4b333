"""Share by link (issue 19): who may open a link, the snapshot it shows (later turns never
appear), revoking, and “Continue in a new chat” as a copy."""

from __future__ import annotations

import pytest
from django.test import Client

from chat.models import ShareLink, SiteSettings, Thread, Turn

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def add_turn(thread: Thread, parent: Turn | None, text: str, answer: str, **fields) -> Turn:
    turn = Turn.objects.create(
        thread=thread,
        parent=parent,
        author=thread.owner,
        user_text=text,
        output_text=answer,
        status=fields.pop("status", Turn.Status.COMPLETED),
        model="demo-chat",
        **fields,
    )
    thread.current_turn = turn
    thread.save(update_fields=["current_turn"])
    return turn


@pytest.fixture
def chat(user, make_thread):
    """Two turns on the visible path, and an older branch beside the second."""
    thread = make_thread(user, title="Trip plan")
    first = add_turn(thread, None, "Where to go?", "Lisbon.")
    add_turn(thread, first, "Old question", "Old branch answer")
    add_turn(thread, first, "How long?", "Four days.", input_tokens=12, output_tokens=3)
    return thread


def make_link(owner, thread) -> ShareLink:
    response = client_of(owner).post(f"/t/{thread.pk}/links/")
    assert response.status_code == 200
    return ShareLink.objects.get(thread=thread)


def test_the_link_is_a_long_random_token_not_an_id(user, chat):
    link = make_link(user, chat)
    assert len(link.token) >= 40
    assert str(chat.pk) != link.token and str(link.pk) != link.token


def test_another_logged_in_user_sees_the_snapshot_and_not_later_turns(user, other_user, chat):
    link = make_link(user, chat)
    add_turn(chat, chat.current_turn, "Later secret", "Not in the snapshot")
    page = client_of(other_user).get(f"/s/{link.token}/").content.decode()
    assert "Where to go?" in page and "Four days." in page
    assert "Old branch answer" not in page  # only the visible path
    assert "Later secret" not in page
    # The link opens the snapshot only: the chat itself stays closed to them.
    assert client_of(other_user).get(f"/t/{chat.pk}/").status_code == 404


def test_anonymous_visitors_need_the_site_setting(client, user, chat):
    link = make_link(user, chat)
    response = client.get(f"/s/{link.token}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    site = SiteSettings.load()
    site.anonymous_share_links = True
    site.save()
    response = client.get(f"/s/{link.token}/")
    assert response.status_code == 200
    assert "Four days." in response.content.decode()
    assert "Log in to continue" in response.content.decode()
    # Anonymous visitors still cannot copy it.
    assert client.post(f"/s/{link.token}/continue/").status_code == 302
    assert Thread.objects.count() == 1


def test_a_revoked_link_is_a_404_for_everyone(user, other_user, chat):
    link = make_link(user, chat)
    site = SiteSettings.load()
    site.anonymous_share_links = True
    site.save()
    assert client_of(other_user).post(f"/t/{chat.pk}/links/{link.pk}/revoke/").status_code == 404
    assert client_of(user).post(f"/t/{chat.pk}/links/{link.pk}/revoke/").status_code == 200
    assert client_of(other_user).get(f"/s/{link.token}/").status_code == 404
    assert Client().get(f"/s/{link.token}/").status_code == 404
    site.anonymous_share_links = False
    site.save()
    # Without the setting, anonymous visitors are sent to log in for any token, so they
    # cannot tell a revoked link from a live one.
    assert Client().get(f"/s/{link.token}/").status_code == 302
    assert client_of(other_user).post(f"/s/{link.token}/continue/").status_code == 404


def test_only_the_owner_makes_links(user, other_user, chat):
    assert client_of(other_user).post(f"/t/{chat.pk}/links/").status_code == 404
    assert not ShareLink.objects.exists()


def test_a_chat_without_a_finished_answer_has_nothing_to_share(user, make_thread):
    thread = make_thread(user)
    add_turn(thread, None, "Still writing", "", status=Turn.Status.IN_PROGRESS)
    response = client_of(user).post(f"/t/{thread.pk}/links/")
    assert "no finished answer to share" in response.content.decode()
    assert not ShareLink.objects.exists()


def test_continue_in_a_new_chat_copies_the_snapshot(user, other_user, chat):
    link = make_link(user, chat)
    add_turn(chat, chat.current_turn, "Later", "Later answer")
    response = client_of(other_user).post(f"/s/{link.token}/continue/")
    copy = Thread.objects.get(owner=other_user)
    assert response["Location"] == f"/t/{copy.pk}/"
    path = []
    turn = copy.current_turn
    while turn is not None:
        path.insert(0, turn)
        turn = turn.parent
    assert [(t.user_text, t.output_text) for t in path] == [
        ("Where to go?", "Lisbon."),
        ("How long?", "Four days."),
    ]
    assert path[1].input_tokens == 12 and all(t.thread_id == copy.pk for t in path)
    assert copy.title == "Trip plan" and copy.model == chat.model
    # The copy is theirs to continue; the original is untouched.
    assert client_of(other_user).get(f"/t/{copy.pk}/").status_code == 200
    assert chat.turns.count() == 4


def test_the_snapshot_page_passes_the_content_security_policy(user, other_user, chat):
    from tests.test_csp import assert_strict

    link = make_link(user, chat)
    assert_strict(client_of(other_user).get(f"/s/{link.token}/"))


def test_staff_turn_on_anonymous_links_in_the_site_settings(staff_client):
    SiteSettings.load()
    page = staff_client.get("/admin/chat/sitesettings/1/change/").content.decode()
    assert 'name="anonymous_share_links"' in page

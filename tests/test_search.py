"""Searching the chats a user can see: what matches, highlighting, visibility and the view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chat.models import Access, Team, Thread, ThreadShare, Turn
from chat.services.search import search_threads

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat():
    """A thread with turns, one per (message, answer) pair, each a child of the one before."""

    def make(owner, title: str = "A chat", *exchanges: tuple[str, str]) -> Thread:
        thread = Thread.objects.create(owner=owner, title=title)
        parent = None
        for user_text, output_text in exchanges:
            parent = Turn.objects.create(
                thread=thread,
                parent=parent,
                author=owner,
                user_text=user_text,
                output_text=output_text,
                status=Turn.Status.COMPLETED,
            )
        if parent is not None:
            thread.current_turn = parent
            thread.save(update_fields=["current_turn"])
        return thread

    return make


def titles(user, query: str) -> list[str]:
    return [result.title for result in search_threads(user, query)]


def test_finds_by_title(user, chat):
    chat(user, "Quarterly budget review")
    chat(user, "Holiday plans")
    assert titles(user, "budget") == ["Quarterly budget review"]


def test_finds_by_the_users_message_and_by_the_answer(user, chat):
    chat(user, "First", ("How do I bake sourdough?", "Feed the starter."))
    chat(user, "Second", ("Anything", "Use a cast-iron skillet."))
    assert titles(user, "sourdough") == ["First"]
    assert titles(user, "skillet") == ["Second"]
    [result] = search_threads(user, "skillet")
    assert result.snippets[0].role == "assistant"
    assert "<mark>skillet</mark>" in result.snippets[0].html


def test_finds_text_on_a_branch_that_is_not_on_screen(user, chat):
    thread = chat(user, "Branches", ("root question", "root answer"))
    root = thread.current_turn
    Turn.objects.create(thread=thread, parent=root, user_text="hidden walrus", output_text="ok")
    shown = Turn.objects.create(thread=thread, parent=root, user_text="shown", output_text="ok")
    thread.current_turn = shown
    thread.save()
    assert titles(user, "walrus") == ["Branches"]


def test_every_word_must_match_somewhere_in_the_thread(user, chat):
    chat(user, "Apples", ("apple pie recipe", "Bake it."))
    chat(user, "Pies", ("cherry pie", "Bake it."), ("and apples?", "Also fine."))
    chat(user, "Cherries only", ("cherry jam", ""))
    assert titles(user, "cherry apple") == ["Pies"]  # the words are in different turns
    assert titles(user, "apple bake") == ["Pies", "Apples"]
    assert titles(user, "cherry banana") == []


def test_matching_is_case_insensitive(user, chat):
    chat(user, "Kubernetes Notes", ("What is a POD?", "A pod groups containers."))
    assert titles(user, "kubernetes") == ["Kubernetes Notes"]
    assert titles(user, "pOd") == ["Kubernetes Notes"]
    [result] = search_threads(user, "KUBERNETES")
    assert result.title_html == "<mark>Kubernetes</mark> Notes"


def test_newest_activity_first(user, chat):
    old = chat(user, "Old report")
    new = chat(user, "New report")
    middle = chat(user, "Middle report")
    now = timezone.now()
    for thread, age in ((old, 3), (new, 1), (middle, 2)):
        Thread.objects.filter(pk=thread.pk).update(updated_at=now - timedelta(days=age))
    assert titles(user, "report") == ["New report", "Middle report", "Old report"]


def test_highlights_matches_and_escapes_html(user, chat):
    chat(user, "<b>Alert</b> & co", ("<script>alert(1)</script>", "An alert() call."))
    [result] = search_threads(user, "alert")
    assert result.title_html == "&lt;b&gt;<mark>Alert</mark>&lt;/b&gt; &amp; co"
    assert [s.html for s in result.snippets] == [
        "&lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt;"
    ]
    assert "<script>" not in result.title_html + "".join(s.html for s in result.snippets)


def test_marks_every_word_in_title_and_snippet(user, chat):
    chat(user, "Red and blue", ("blue sky, red sun", ""))
    [result] = search_threads(user, "red blue")
    assert result.title_html == "<mark>Red</mark> and <mark>blue</mark>"
    assert result.snippets[0].html == "<mark>blue</mark> sky, <mark>red</mark> sun"


def test_snippet_is_cut_at_word_boundaries_around_the_first_match(user, chat):
    before = " ".join(f"before{i}" for i in range(40))
    after = " ".join(f"after{i}" for i in range(40))
    original = f"{before} needle {after}"
    chat(user, "Long", (original, ""))
    [result] = search_threads(user, "needle")
    html = result.snippets[0].html
    assert html.startswith("…before") and html.endswith("…")
    text = html.removeprefix("…").removesuffix("…")
    assert "<mark>needle</mark>" in text
    plain = text.replace("<mark>", "").replace("</mark>", "")
    assert 100 <= len(plain) <= 160
    assert f" {plain} " in f" {original} "  # whole words only


def test_short_text_is_not_cut(user, chat):
    chat(user, "Short", ("a\nshort   needle\n", ""))
    [result] = search_threads(user, "needle")
    assert result.snippets[0].html == "a short <mark>needle</mark>"


def test_at_most_three_snippets_per_thread_in_order(user, chat):
    chat(user, "Many", *[(f"message {i} about otters", "") for i in range(6)])
    [result] = search_threads(user, "otters")
    assert [s.html for s in result.snippets] == [
        f"message {i} about <mark>otters</mark>" for i in range(3)
    ]


@pytest.mark.parametrize(("query", "found"), [("100%", "Growth 100% done"), ("a_b", "var a_b")])
def test_percent_and_underscore_match_literally(user, chat, query, found):
    chat(user, "Growth 100% done")
    chat(user, "Growth 1000 done")  # would match a LIKE '%100%%' that did not escape %
    chat(user, "var a_b")
    chat(user, "var axb")  # would match an unescaped _
    chat(user, "back\\slash a\\b")
    assert titles(user, query) == [found]


def test_backslash_matches_literally(user, chat):
    chat(user, "path C:\\temp")
    chat(user, "path C:temp")
    assert titles(user, "C:\\temp") == ["path C:\\temp"]


def test_never_returns_another_users_thread(user, other_user, chat):
    chat(other_user, "Secret plans", ("secret plans", "secret answer"))
    chat(user, "My plans")
    assert titles(user, "plans") == ["My plans"]
    assert titles(user, "secret") == []


def test_returns_a_thread_shared_by_name_until_the_share_is_deleted(user, other_user, chat):
    thread = chat(other_user, "Roadmap", ("draft the roadmap", "Here it is."))
    assert titles(user, "roadmap") == []
    share = ThreadShare.objects.create(thread=thread, user=user, access=Access.READ)
    [result] = search_threads(user, "roadmap")
    assert result.title == "Roadmap"
    assert result.shared is True and result.owner_username == other_user.username
    share.delete()
    assert titles(user, "roadmap") == []


def test_returns_a_thread_shared_with_the_users_team(user, other_user, make_user, chat):
    team = Team.objects.create(name="Platform")
    team.members.add(user)
    thread = chat(other_user, "Incident review", ("outage timeline", ""))
    share = ThreadShare.objects.create(thread=thread, team=team, access=Access.COLLABORATE)
    outsider = make_user("eve")
    assert titles(user, "outage") == ["Incident review"]
    assert titles(outsider, "outage") == []
    share.delete()
    assert titles(user, "outage") == []


def test_own_threads_are_not_marked_shared(user, chat):
    chat(user, "Mine")
    [result] = search_threads(user, "mine")
    assert result.shared is False and result.owner_username == user.username


@pytest.mark.parametrize("query", ["", " ", "a", " b "])
def test_a_query_shorter_than_two_characters_returns_nothing(user, chat, query):
    chat(user, "a b c")
    assert search_threads(user, query) == []


def test_a_very_long_query_is_cut(user, chat):
    chat(user, "x" * 200)
    assert titles(user, "x" * 500) == ["x" * 200]


def test_the_limit_caps_the_results(user, chat):
    for i in range(5):
        chat(user, f"note {i}")
    assert len(search_threads(user, "note", limit=3)) == 3


# -- the view ------------------------------------------------------------------------------------


def test_search_page_lists_results_with_links(logged_in_client, user, chat):
    thread = chat(user, "Trip to Oslo", ("book a hotel", "Try the harbour."))
    response = logged_in_client.get(reverse("chat:search"), {"q": "hotel"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="thread-list"' in html  # the full page with the sidebar
    assert f'href="{thread.get_absolute_url()}"' in html
    assert "book a <mark>hotel</mark>" in html
    assert 'value="hotel"' in html  # the search box keeps the query
    assert "HX-Request" in response["Vary"]


def test_search_page_says_when_nothing_matches(logged_in_client, user, chat):
    chat(user, "Something")
    html = logged_in_client.get("/search/", {"q": "<nothing>"}).content.decode()
    assert "No chats match “&lt;nothing&gt;”." in html


def test_htmx_request_returns_only_the_results(logged_in_client, user, chat):
    chat(user, "Trip to Oslo")
    response = logged_in_client.get("/search/", {"q": "oslo"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and "thread-list" not in html
    assert "Trip to <mark>Oslo</mark>" in html


def test_htmx_request_with_a_short_query_returns_nothing(logged_in_client, user, chat):
    chat(user, "a b c")
    html = logged_in_client.get("/search/", {"q": "a"}, headers={"HX-Request": "true"})
    assert html.content.decode().strip() == ""


def test_search_page_does_not_leak_other_users_threads(logged_in_client, other_user, chat):
    chat(other_user, "Mallory's secret")
    html = logged_in_client.get("/search/", {"q": "secret"}).content.decode()
    assert "Mallory" not in html and "No chats match" in html


def test_logged_out_request_is_redirected_to_login(client, user):
    response = client.get("/search/", {"q": "anything"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_chat_page_has_a_search_box(logged_in_client):
    html = logged_in_client.get("/").content.decode()
    assert '<label for="search-q" class="visually-hidden">Search chats</label>' in html
    assert 'type="search" name="q"' in html
    assert f'action="{reverse("chat:search")}"' in html
    assert 'hx-trigger="input changed delay:300ms, search"' in html
    assert 'id="search-results" class="search-results" aria-live="polite"' in html


def _count_queries(client, query: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/search/", {"q": query})
    assert response.status_code == 200
    return len(captured)


def test_query_count_does_not_grow_with_the_number_of_matches(
    logged_in_client, user, other_user, chat, django_assert_max_num_queries
):
    team = Team.objects.create(name="Team")
    team.members.add(user)
    chat(user, "one zebra", ("zebra", "zebra"), ("zebra", "zebra"))
    _count_queries(logged_in_client, "zebra")  # warm up: first-request checks
    few = _count_queries(logged_in_client, "zebra")
    for i in range(15):
        owner = user if i % 3 == 0 else other_user
        thread = chat(owner, f"zebra {i}", *[(f"zebra {j}", f"zebra {j}") for j in range(4)])
        if i % 3 == 1:
            ThreadShare.objects.create(thread=thread, user=user)
        elif i % 3 == 2:
            ThreadShare.objects.create(thread=thread, team=team)
    assert _count_queries(logged_in_client, "zebra") == few
    with django_assert_max_num_queries(few):
        html = logged_in_client.get("/search/", {"q": "zebra"}).content.decode()
    assert html.count('class="search-result"') == 16
    assert html.count("shared by mallory") == 10

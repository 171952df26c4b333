"""A long conversation pages its history: the page shows the newest turns of the visible path and
"Show earlier messages" fetches the ones above over htmx, down to the first; the socket's
re-render after a branch switch pages the same way; the page's cost does not grow with the thread.
"""

import itertools
import json
import re

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Thread, Turn
from chat.routing import websocket_application
from chat.services import conversation
from tests.ws import HOST

PAGE = 40
ANSWER = "Answer {n}\n\n```python\nprint({n})\n```\n\n| a | b |\n|---|---|\n| {n} | x |"
ARTICLE = re.compile(r'<article id="turn-(\d+)"')
EARLIER = re.compile(r'hx-get="(/t/\d+/earlier/\?before=\d+)"')


@pytest.fixture(autouse=True)
def _page_size(settings):
    settings.HISTORY_PAGE_TURNS = PAGE


def make_chain(owner, count: int, *, title: str = "Long chat") -> tuple[Thread, list[Turn]]:
    """A finished linear conversation of ``count`` turns (answers with code and a table)."""
    thread = Thread.objects.create(owner=owner, title=title, model="demo-chat")
    turns = Turn.objects.bulk_create(
        Turn(
            thread=thread,
            author=owner,
            user_text=f"Question {n}",
            output_text=ANSWER.format(n=n),
            status=Turn.Status.COMPLETED,
            model="demo-chat",
        )
        for n in range(1, count + 1)
    )
    for parent, child in itertools.pairwise(turns):
        child.parent_id = parent.pk
    Turn.objects.bulk_update(turns[1:], ["parent"])
    thread.current_turn = turns[-1]
    thread.save(update_fields=["current_turn"])
    return thread, turns


def shown(html: str) -> list[int]:
    return [int(pk) for pk in ARTICLE.findall(html)]


def earlier_url(html: str) -> str | None:
    match = EARLIER.search(html)
    return match.group(1) if match else None


@pytest.mark.django_db
def test_a_long_thread_shows_only_its_newest_page_and_a_button_for_earlier(logged_in_client, user):
    thread, turns = make_chain(user, 100)
    html = logged_in_client.get(f"/t/{thread.pk}/").content.decode()
    assert shown(html) == [t.pk for t in turns[-PAGE:]]
    assert "Show earlier messages" in html
    assert earlier_url(html) == f"/t/{thread.pk}/earlier/?before={turns[-PAGE].pk}"
    # Off-page answers are not rendered at all (their markdown is the page's main cost).
    assert "Answer 60<" not in html and "Answer 61<" in html and "Answer 100<" in html


@pytest.mark.django_db
def test_earlier_pages_walk_back_to_the_first_turn_without_gaps_or_repeats(logged_in_client, user):
    thread, turns = make_chain(user, 100)
    html = logged_in_client.get(f"/t/{thread.pk}/").content.decode()
    seen, url, requests = shown(html), earlier_url(html), 0
    while url:
        response = logged_in_client.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200
        part = response.content.decode()
        assert "<html" not in part and '<section id="turns"' not in part  # only the fragment
        page = shown(part)
        assert 0 < len(page) <= PAGE
        seen = page + seen
        url, requests = earlier_url(part), requests + 1
    assert seen == [t.pk for t in turns]
    assert requests == 2  # 40 + 40 + 20
    assert "Show earlier messages" not in part  # the first page has no button


@pytest.mark.django_db
def test_a_short_thread_has_no_earlier_button(logged_in_client, user):
    thread, turns = make_chain(user, PAGE)
    html = logged_in_client.get(f"/t/{thread.pk}/").content.decode()
    assert shown(html) == [t.pk for t in turns]
    assert "Show earlier messages" not in html


@pytest.mark.django_db
def test_earlier_follows_the_ancestors_of_the_turn_asked_about(logged_in_client, user, settings):
    """Earlier turns are those above ``before`` whatever branch is on screen meanwhile."""
    settings.HISTORY_PAGE_TURNS = 2
    thread, turns = make_chain(user, 5)
    other = Turn.objects.create(
        thread=thread, author=user, parent=turns[1], user_text="a branch", status="completed"
    )
    thread.current_turn = other
    thread.save(update_fields=["current_turn"])
    response = logged_in_client.get(f"/t/{thread.pk}/earlier/?before={turns[4].pk}")
    assert shown(response.content.decode()) == [turns[2].pk, turns[3].pk]
    assert earlier_url(response.content.decode()).endswith(f"before={turns[2].pk}")


@pytest.mark.django_db
@pytest.mark.parametrize("before", ["", "abc", "-1", "{foreign}", "999999"])
def test_earlier_needs_a_turn_of_this_thread(logged_in_client, user, before):
    thread, _ = make_chain(user, 3)
    _, foreign = make_chain(user, 1, title="Another chat")
    before = before.format(foreign=foreign[0].pk)
    response = logged_in_client.get(f"/t/{thread.pk}/earlier/?before={before}")
    assert response.status_code == 404


@pytest.mark.django_db
def test_earlier_is_not_found_for_another_users_thread(logged_in_client, other_user):
    theirs, turns = make_chain(other_user, 50)
    response = logged_in_client.get(f"/t/{theirs.pk}/earlier/?before={turns[-1].pk}")
    assert response.status_code == 404
    assert "Question" not in response.content.decode()


@pytest.mark.django_db
def test_earlier_sends_a_logged_out_user_to_login(client, user):
    thread, turns = make_chain(user, 50)
    url = f"/t/{thread.pk}/earlier/?before={turns[-1].pk}"
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert "Question" not in response.content.decode()


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_queries_of_the_page_and_of_earlier_do_not_grow_with_the_thread(
    logged_in_client, user, django_assert_max_num_queries
):
    small, small_turns = make_chain(user, 3, title="Small")
    large, large_turns = make_chain(user, 300, title="Large")
    page_queries = _queries(logged_in_client, f"/t/{small.pk}/")
    earlier_queries = _queries(
        logged_in_client, f"/t/{small.pk}/earlier/?before={small_turns[-1].pk}"
    )
    assert page_queries >= 3 and earlier_queries >= 3, (page_queries, earlier_queries)
    with django_assert_max_num_queries(page_queries):
        assert logged_in_client.get(f"/t/{large.pk}/").status_code == 200
    with django_assert_max_num_queries(earlier_queries):
        url = f"/t/{large.pk}/earlier/?before={large_turns[-PAGE].pk}"
        assert len(shown(logged_in_client.get(url).content.decode())) == PAGE


@pytest.mark.django_db
def test_siblings_of_one_turn_match_the_whole_tree(user):
    thread, turns = make_chain(user, 3)
    extra = [
        Turn.objects.create(thread=thread, author=user, parent=turns[0], user_text=f"v{n}")
        for n in range(2)
    ] + [Turn.objects.create(thread=thread, author=user, user_text="another root")]
    tree = conversation.ThreadTree(thread)
    for turn in [*turns, *extra]:
        assert conversation.siblings_of(turn) == tree.siblings(turn), turn.user_text


@pytest.mark.django_db(transaction=True)
async def test_a_branch_switch_over_the_socket_shows_the_newest_page_of_the_new_path(
    user, client, settings
):
    from asgiref.sync import sync_to_async

    settings.HISTORY_PAGE_TURNS = 3
    thread, turns = await sync_to_async(make_chain)(user, 6)
    # A second version of the last message, shown now; switching goes back to the first.
    other = await Turn.objects.acreate(
        thread=thread, author=user, parent=turns[4], user_text="v2", status="completed"
    )
    thread.current_turn = other
    await thread.asave(update_fields=["current_turn"])
    await sync_to_async(client.force_login)(user)
    ws = WebsocketCommunicator(
        websocket_application,
        f"/ws/threads/{thread.pk}/",
        headers=[
            (b"origin", b"http://127.0.0.1"),
            HOST,
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ],
    )
    assert (await ws.connect())[0]
    await ws.send_to(json.dumps({"action": "switch", "turn_id": str(turns[5].pk)}))
    html = await ws.receive_from(timeout=5)
    while 'id="turns"' not in html:
        html = await ws.receive_from(timeout=5)
    await ws.disconnect()
    listed = html.split('id="turns"')[1].split("</section>")[0]
    assert shown(listed) == [turns[3].pk, turns[4].pk, turns[5].pk]
    assert earlier_url(listed) == f"/t/{thread.pk}/earlier/?before={turns[3].pk}"
    assert ">1/2<" in listed and "v2" not in listed

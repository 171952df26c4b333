"""The sidebar: date groups (frozen clock), paging as you scroll, pins, folders, the archive,
and who may organise what (only the owner; another user's ids are 404)."""

import datetime as dt
import re
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Folder, Thread, ThreadShare
from chat.services import sidebar

NOW = dt.datetime(2026, 3, 15, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def chat(owner, title: str, when: dt.datetime | None = None, **fields) -> Thread:
    thread = Thread.objects.create(owner=owner, title=title, **fields)
    if when is not None:
        Thread.objects.filter(pk=thread.pk).update(updated_at=when)
    return thread


def sidebar_html(client) -> str:
    page = client.get(reverse("chat:home")).content.decode()
    return page.split('<div id="sidebar-lists">')[1].split('<div class="sidebar-bottom">')[0]


def headings(html: str) -> list[str]:
    return re.findall(r'<h3 class="date-heading">([^<]+)</h3>', html)


def titles_under(html: str, heading: str) -> list[str]:
    section = html.split(f'<h3 class="date-heading">{heading}</h3>')[1]
    section = section.split('<h3 class="date-heading">')[0]
    return re.findall(r'<a href="/t/\d+/"[^>]*>([^<]+)</a>', section)


def test_chats_are_grouped_by_date_with_a_frozen_clock(frozen, logged_in, user):
    chat(user, "This morning", NOW.replace(hour=1))
    chat(user, "Last night", NOW - dt.timedelta(hours=11))  # 23:00 the day before
    chat(user, "Five days ago", NOW - dt.timedelta(days=5))
    chat(user, "Eight days ago", NOW - dt.timedelta(days=8))
    chat(user, "In February", dt.datetime(2026, 2, 20, tzinfo=dt.UTC))
    chat(user, "New Year's Eve", dt.datetime(2025, 12, 31, 23, tzinfo=dt.UTC))
    html = sidebar_html(logged_in)
    assert headings(html) == [
        "Today",
        "Yesterday",
        "Previous 7 days",
        "March 2026",
        "February 2026",
        "December 2025",
    ]
    assert titles_under(html, "Today") == ["This morning"]
    assert titles_under(html, "Yesterday") == ["Last night"]
    assert titles_under(html, "Previous 7 days") == ["Five days ago"]
    assert titles_under(html, "March 2026") == ["Eight days ago"]
    assert titles_under(html, "December 2025") == ["New Year&#x27;s Eve"]


def test_groups_follow_the_local_calendar(frozen, settings):
    settings.TIME_ZONE = "Pacific/Auckland"  # 23:00 on the 15th there
    today = timezone.localdate()
    assert today == dt.date(2026, 3, 15)
    assert sidebar.date_group(NOW - dt.timedelta(hours=10), today) == "Today"
    assert sidebar.date_group(NOW - dt.timedelta(hours=24), today) == "Yesterday"


def test_older_chats_load_as_you_scroll_without_a_cap(frozen, logged_in, user):
    for number in range(260):
        chat(user, f"Chat {number:03}", NOW - dt.timedelta(hours=number))
    html = sidebar_html(logged_in)
    seen = re.findall(r">(Chat \d{3})</a>", html)
    all_headings = headings(html)
    while more := re.search(r'hx-get="(/sidebar/more/\?[^"]+)" hx-trigger="intersect once"', html):
        html = logged_in.get(unescape(more.group(1))).content.decode()
        seen += re.findall(r">(Chat \d{3})</a>", html)
        all_headings += headings(html)
    assert seen == [f"Chat {number:03}" for number in range(260)]  # all, in order, once each
    assert len(all_headings) == len(set(all_headings))  # a group's heading is not repeated
    assert logged_in.get("/sidebar/more/?after=garbage").status_code == 404


def test_pinned_chats_come_first_and_leave_the_dated_list(logged_in, user):
    chat(user, "Ordinary")
    pinned = chat(user, "Important")
    response = logged_in.post(
        reverse("chat:pin", args=[pinned.pk]), {"pinned": "1"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert html.startswith('<div id="sidebar-lists">')
    pins = html.split('id="pinned-list"')[1].split("</ul>")[0]
    dated = html.split('id="thread-list"')[1].split("</ul>")[0]
    assert ">Important</a>" in pins and ">Important</a>" not in dated
    assert ">Ordinary</a>" in dated
    logged_in.post(reverse("chat:pin", args=[pinned.pk]), {"pinned": "0"})
    assert 'id="pinned-list"' not in sidebar_html(logged_in)


def test_folders_create_rename_move_and_delete_keep_the_chats(logged_in, user):
    thread = chat(user, "Trip plans")
    logged_in.post(reverse("chat:folder-create"), {"name": "  Travel  "})
    folder = Folder.objects.get(owner=user)
    assert folder.name == "Travel"
    html = logged_in.post(
        reverse("chat:move", args=[thread.pk]), {"folder": folder.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    in_folder = html.split(f'data-folder="{folder.pk}"')[1].split("</details>")[0]
    assert '<span class="muted folder-count">1</span>' in in_folder
    assert "Trip plans" not in html.split('id="thread-list"')[1]  # left the dated list
    opened = logged_in.get("/sidebar/more/", {"folder": folder.pk}).content.decode()
    assert ">Trip plans</a>" in opened  # what the folder shows when opened
    html = logged_in.post(
        reverse("chat:folder-create"), {"name": "travel"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert Folder.objects.filter(owner=user).count() == 2  # names differ in case only: fine
    html = logged_in.post(
        reverse("chat:folder-create"), {"name": "Travel"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "You already have a folder named “Travel”." in html
    logged_in.post(reverse("chat:folder-rename", args=[folder.pk]), {"name": "Holidays"})
    folder.refresh_from_db()
    assert folder.name == "Holidays"
    logged_in.post(reverse("chat:folder-delete", args=[folder.pk]))
    thread.refresh_from_db()
    assert thread.folder_id is None  # the chat stays, back in the dated list
    assert ">Trip plans</a>" in sidebar_html(logged_in).split('id="thread-list"')[1]


def test_archived_chats_leave_the_sidebar_but_search_and_restore_find_them(logged_in, user):
    thread = chat(user, "Old project notes")
    logged_in.post(reverse("chat:archive", args=[thread.pk]), {"archived": "1"})
    html = sidebar_html(logged_in)
    assert "Old project notes" not in html and "Archived chats" in html
    archive = logged_in.get(reverse("chat:archived")).content.decode()
    assert ">Old project notes</a>" in archive.split('id="archived-list"')[1]
    found = logged_in.get(reverse("chat:search"), {"q": "project notes"}).content.decode()
    assert f'href="/t/{thread.pk}/' in found.split('id="search-page"')[1]  # in the results
    response = logged_in.post(
        reverse("chat:archive", args=[thread.pk]),
        {"archived": "0", "next": reverse("chat:archived")},
    )
    assert response.status_code == 302 and response["Location"] == reverse("chat:archived")
    assert ">Old project notes</a>" in sidebar_html(logged_in)


def test_rename_from_the_menu_is_a_user_title(logged_in, user):
    thread = chat(user, "plan a trip")
    html = logged_in.post(
        reverse("chat:retitle", args=[thread.pk]), {"title": " Alps 2026 "}, HTTP_HX_REQUEST="true"
    ).content.decode()
    thread.refresh_from_db()
    assert (thread.title, thread.title_source) == ("Alps 2026", Thread.TitleSource.USER)
    assert ">Alps 2026</a>" in html
    html = logged_in.post(
        reverse("chat:retitle", args=[thread.pk]), {"title": "   "}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "A chat needs a title." in html
    thread.refresh_from_db()
    assert thread.title == "Alps 2026"  # nothing lost


def test_delete_from_the_menu(logged_in, user):
    keep, doomed = chat(user, "Keep"), chat(user, "Doomed")
    html = logged_in.post(
        reverse("chat:remove", args=[doomed.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert ">Keep</a>" in html and "Doomed" not in html
    assert not Thread.objects.filter(pk=doomed.pk).exists()
    # Deleting the chat that is open sends the page home.
    response = logged_in.post(
        reverse("chat:remove", args=[keep.pk]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL=f"http://testserver/t/{keep.pk}/",
    )
    assert response["HX-Redirect"] == reverse("chat:home")


def test_another_users_folder_and_chat_ids_are_404(logged_in, user, other_user):
    mine = chat(user, "Mine")
    theirs = chat(other_user, "Theirs")
    their_folder = Folder.objects.create(owner=other_user, name="Private")
    shared = chat(other_user, "Shared with me")
    ThreadShare.objects.create(thread=shared, user=user, access="collaborate")
    assert (
        logged_in.post(
            reverse("chat:move", args=[mine.pk]), {"folder": their_folder.pk}
        ).status_code
        == 404
    )
    assert (
        logged_in.post(
            reverse("chat:folder-rename", args=[their_folder.pk]), {"name": "x"}
        ).status_code
        == 404
    )
    assert logged_in.post(reverse("chat:folder-delete", args=[their_folder.pk])).status_code == 404
    assert logged_in.get("/sidebar/more/", {"folder": their_folder.pk}).status_code == 404
    for other in (theirs, shared):  # shared chats are organised by their owner only
        for name, data in [
            ("chat:pin", {}),
            ("chat:archive", {}),
            ("chat:move", {"folder": ""}),
            ("chat:retitle", {"title": "x"}),
            ("chat:remove", {}),
        ]:
            assert logged_in.post(reverse(name, args=[other.pk]), data).status_code == 404, name
    mine.refresh_from_db()
    their_folder.refresh_from_db()
    assert mine.folder_id is None and their_folder.name == "Private"
    assert Thread.objects.filter(pk=theirs.pk, pinned_at=None, archived_at=None).exists()
    html = sidebar_html(logged_in)
    assert ">Shared with me <span" in html.split('id="shared-heading"')[1]  # still listed


def test_the_sidebar_takes_a_few_queries_whatever_the_number_of_chats(
    logged_in, user, django_assert_max_num_queries
):
    folder = Folder.objects.create(owner=user, name="Work")
    Thread.objects.bulk_create(
        [
            Thread(owner=user, title=f"Chat {n}", folder=folder if n % 5 == 0 else None)
            for n in range(300)
        ]
    )
    with django_assert_max_num_queries(14):
        sidebar.sidebar_context(user)

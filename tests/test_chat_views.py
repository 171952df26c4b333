"""The chat pages: new chat, history, model picker, rename, delete, and who may see what."""

import pytest
from asgiref.sync import sync_to_async
from django.utils.html import escape

from chat.models import ModelSetting, Provider, SiteSettings, Thread, Turn
from chat.services.turns import registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def alice(async_client, user):
    await async_client.aforce_login(user)
    return async_client


async def test_home_offers_a_model_picker_filled_from_the_gateway(alice, provider):
    html = (await alice.get("/")).content.decode()
    assert '<label for="model">Model</label>' in html
    assert f'value="{provider.pk}:demo-chat"' in html
    assert '<label for="message" class="visually-hidden">Message</label>' in html


async def test_a_provider_that_is_down_is_shown_and_the_page_still_works(alice, provider):
    await Provider.objects.acreate(name="Broken gateway", base_url="http://127.0.0.1:9/v1")
    response = await alice.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Broken gateway is unavailable" in html
    assert f'value="{provider.pk}:demo-chat"' in html


async def test_first_message_creates_the_chat_and_answers_it(alice, user, provider):
    response = await alice.post(
        "/threads/new/", {"model": f"{provider.pk}:demo-chat", "message": "Plan a picnic"}
    )
    thread = await Thread.objects.aget(owner=user)
    assert response.status_code == 302 and response["Location"] == f"/t/{thread.pk}/"
    turn = await Turn.objects.aget(thread=thread)
    await registry.wait_for(turn.pk)
    html = (await alice.get(f"/t/{thread.pk}/")).content.decode()
    assert thread.title == "Plan a picnic"
    assert f'ws-connect="/ws/threads/{thread.pk}/"' in html
    assert "Plan a picnic" in html and 'data-status="completed"' in html
    assert "<table>" in html  # the answer's markdown is rendered on the server
    assert ">Plan a picnic</a>" in html  # and the chat is in the sidebar


async def test_new_chat_without_a_model_is_refused(alice, user, provider):
    response = await alice.post("/threads/new/", {"model": "", "message": "hi"}, follow=True)
    assert "Pick a model first." in response.content.decode()
    assert not await Thread.objects.filter(owner=user).aexists()


def _empty(settings, user, provider) -> str:
    return "   \n  "


def _too_long(settings, user, provider) -> str:
    settings.MAX_MESSAGE_CHARS = 20
    return "Plan <a> picnic & more, with every detail"


def _over_quota(settings, user, provider) -> str:
    SiteSettings.objects.update_or_create(pk=1, defaults={"default_tokens_per_day": 0})
    return "Plan <a> picnic & more"


def _too_quick(settings, user, provider) -> str:
    settings.RATE_LIMIT_PER_MINUTE = 1
    earlier = Thread.objects.create(owner=user, provider=provider, model="demo-chat", title="B")
    Turn.objects.create(thread=earlier, author=user, user_text="a minute ago", model="demo-chat")
    return "Plan <a> picnic & more"


def _model_turned_off(settings, user, provider) -> str:
    ModelSetting.objects.create(provider=provider, model="demo-chat", enabled=False)
    return "Plan <a> picnic & more"


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        (_empty, "Type a message first."),
        (_too_long, "That message is too long"),
        (_over_quota, "Your daily quota is 0 tokens, so you cannot send messages"),
        (_too_quick, "too quickly"),
        (_model_turned_off, "has been turned off by an administrator"),
    ],
)
async def test_a_refused_first_message_creates_no_chat_and_keeps_the_text(
    alice, user, provider, settings, refuse, reason
):
    text = await sync_to_async(refuse)(settings, user, provider)
    chats_before = await Thread.objects.filter(owner=user).acount()
    response = await alice.post(
        "/threads/new/",
        {"model": f"{provider.pk}:demo-chat", "message": text, "api": "chat"},
    )
    html = response.content.decode()
    assert response.status_code == 200  # the page again, not a redirect
    assert await Thread.objects.filter(owner=user).acount() == chats_before  # no empty chat
    assert f"autofocus required>{escape(text)}</textarea>" in html  # the text is still there
    error = html.split('id="composer-error"')[1].split("</div>")[0]
    assert reason in error
    assert '<option value="chat" selected>' in html  # so are the choices made
    assert "New chat</a></li>" not in html  # nor in the sidebar


async def test_sidebar_lists_only_my_chats_newest_first(alice, user, other_user, make_thread):
    await Thread.objects.acreate(owner=user, title="Older")
    await Thread.objects.acreate(owner=user, title="Newer")
    await Thread.objects.acreate(owner=other_user, title="Not mine")
    html = (await alice.get("/")).content.decode()
    assert html.index(">Newer</a>") < html.index(">Older</a>")
    assert "Not mine" not in html


async def test_rename_and_change_model(alice, user, provider):
    thread = await Thread.objects.acreate(owner=user, provider=provider, model="demo-chat")
    response = await alice.post(
        f"/t/{thread.pk}/rename/", {"title": "Renamed"}, headers={"HX-Request": "true"}
    )
    assert 'value="Renamed"' in response.content.decode()
    await alice.post(f"/t/{thread.pk}/model/", {"model": f"{provider.pk}:demo-reasoner"})
    await thread.arefresh_from_db()
    assert (thread.title, thread.model) == ("Renamed", "demo-reasoner")
    response = await alice.post(f"/t/{thread.pk}/model/", {"model": "999:nope"})
    assert response.status_code == 422 and "not available" in response.content.decode()


async def test_delete_asks_for_confirmation_and_removes_the_chat(alice, user):
    thread = await Thread.objects.acreate(owner=user, title="Doomed")
    html = (await alice.get(f"/t/{thread.pk}/")).content.decode()
    assert "hx-confirm=" in html and "This cannot be undone" in html
    response = await alice.post(f"/t/{thread.pk}/delete/", headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == "/"
    assert not await Thread.objects.filter(pk=thread.pk).aexists()
    assert (await alice.get(f"/t/{thread.pk}/")).status_code == 404  # a deleted chat is gone


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/t/{}/"),
        ("post", "/t/{}/rename/"),
        ("post", "/t/{}/model/"),
        ("post", "/t/{}/delete/"),
    ],
)
async def test_another_users_chat_is_not_found(alice, other_user, method, url):
    theirs = await Thread.objects.acreate(owner=other_user, title="Private")
    response = await getattr(alice, method)(
        url.format(theirs.pk), {"title": "pwned", "model": "1:x"}
    )
    assert response.status_code == 404
    await theirs.arefresh_from_db()
    assert theirs.title == "Private"


async def test_csrf_is_enforced_on_posts(user, provider):
    from django.test import AsyncClient

    strict = AsyncClient(enforce_csrf_checks=True)
    await strict.aforce_login(user)
    thread = await Thread.objects.acreate(owner=user, title="Keep")
    response = await strict.post(f"/t/{thread.pk}/rename/", {"title": "csrf"})
    assert response.status_code == 403


async def test_new_chat_form_chooses_the_api(alice, user, provider, demo_requests):
    await alice.post(
        "/threads/new/",
        {"model": f"{provider.pk}:demo-chat", "message": "via chat #chunks=5", "api": "chat"},
    )
    thread = await Thread.objects.aget(owner=user)
    assert thread.api == "chat"
    await registry.wait_for((await Turn.objects.aget(thread=thread)).pk)
    assert demo_requests()[-1]["messages"][-1]["content"] == "via chat #chunks=5"

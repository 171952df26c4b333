"""Chat titles written by a model after the first answer (chat/services/titles.py), against
the demo gateway over HTTP: what is sent, what is stored, what never is."""

import pytest
from channels.layers import get_channel_layer

from chat import live
from chat.models import Provider, Thread, Turn, UsageRecord
from chat.services import titles
from chat.services.turns import launch, registry
from chat.upstream.request import Api

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _titles_on(settings):
    settings.AUTO_TITLES = True


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user, title="New chat")


async def first_answer(user, thread, text: str) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text)
    await registry.wait_for(turn.pk)
    await titles.wait_all()
    return await Turn.objects.aget(pk=turn.pk)


def title_requests(requests: list[dict]) -> list[dict]:
    return [
        body
        for body in requests
        if "short title" in str(body.get("instructions", "")) + str(body.get("messages", ""))
    ]


async def test_first_answer_gets_a_model_title_without_directives(user, thread, demo_requests):
    text = "which mountains are the oldest on earth #chunks=3\nand why"
    await first_answer(user, thread, text)
    await thread.arefresh_from_db()
    assert thread.title == "Which mountains are the oldest"  # not the first line as typed
    assert thread.title_source == Thread.TitleSource.MODEL
    (sent,) = title_requests(demo_requests())
    assert sent["model"] == "gpt-5.4-mini"  # the smallest model the gateway lists
    assert sent["stream"] is False
    assert "#chunks" not in sent["input"] and "oldest on earth" in sent["input"]
    record = await UsageRecord.objects.aget(kind="title")
    assert (record.model, record.thread_id, record.user_id) == ("gpt-5.4-mini", thread.pk, user.pk)
    assert record.input_tokens > 0 and record.output_tokens > 0
    assert await UsageRecord.objects.filter(kind="turn").acount() == 1  # the answer's own


async def test_chat_completions_thread_sends_the_instructions_as_a_system_message(
    user, thread, demo_requests
):
    thread.api = Api.CHAT
    await thread.asave()
    await first_answer(user, thread, "Bonjour, quel temps fait-il à Paris ?")
    await thread.arefresh_from_db()
    assert thread.title == "Bonjour, quel temps fait-il à"  # the chat's language, as written
    (sent,) = title_requests(demo_requests())
    assert sent["messages"][0]["role"] == "system"


async def test_staff_choice_of_title_model_is_used(user, thread, provider, demo_requests):
    provider.title_model = "demo-reasoner"
    await provider.asave()
    await first_answer(user, thread, "plan a trip to the alps")
    (sent,) = title_requests(demo_requests())
    assert sent["model"] == "demo-reasoner"


async def test_a_failing_title_model_leaves_the_first_line_title(user, thread, provider):
    provider.title_model = "no-such-model"  # the gateway answers 404
    await provider.asave()
    turn = await first_answer(user, thread, "plan a trip to the alps\nin june")
    assert turn.status == Turn.Status.COMPLETED  # the answer is not affected
    await thread.arefresh_from_db()
    assert (thread.title, thread.title_source) == ("plan a trip to the alps", "message")
    assert not await UsageRecord.objects.filter(kind="title").aexists()


async def test_a_title_the_user_set_is_never_replaced(user, thread, settings, demo_requests):
    settings.AUTO_TITLES = False
    turn = await first_answer(user, thread, "plan a trip to the alps")
    await Thread.objects.filter(pk=thread.pk).aupdate(
        title="Holidays", title_source=Thread.TitleSource.USER
    )
    assert await titles.generate(turn.pk) == ""
    await thread.arefresh_from_db()
    assert thread.title == "Holidays"
    assert title_requests(demo_requests()) == []  # not even asked


async def test_only_the_first_answer_is_titled(user, thread, demo_requests):
    await first_answer(user, thread, "first question here")
    await Thread.objects.filter(pk=thread.pk).aupdate(
        title="first question here", title_source=Thread.TitleSource.MESSAGE
    )
    before = len(demo_requests())
    await first_answer(user, thread, "second question")
    assert title_requests(demo_requests()[before:]) == []


async def test_open_pages_hear_of_the_new_title(user, thread):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(live.thread_group(thread.pk), channel)
    await first_answer(user, thread, "which mountains are the oldest")
    seen = []
    while not seen or seen[-1]["type"] != titles.RETITLED:
        seen.append(await layer.receive(channel))
    assert seen[-1]["thread_id"] == thread.pk


def test_the_retitled_fragment_swaps_header_and_sidebar(user, make_thread, other_user):
    thread = make_thread(user, title="Oldest mountains")
    html = titles.retitled_html(user, thread.pk)
    assert (
        'hx-swap-oob="true" data-page-title="Oldest mountains · Switchboard" id="thread-title"'
        in html
    )
    assert '<div hx-swap-oob="true" id="sidebar-lists">' in html
    assert ">Oldest mountains</a>" in html
    assert titles.retitled_html(other_user, thread.pk) == ""  # not theirs: nothing


@pytest.mark.parametrize(
    ("listed", "own", "chosen"),
    [
        (("gpt-5.4", "gpt-5.4-mini", "gpt-4o-mini"), "gpt-5.4", "gpt-5.4-mini"),
        (("gpt-4o", "gpt-4o-mini", "gpt-5.4-mini"), "gpt-4o", "gpt-4o-mini"),
        (("big-model", "other"), "big-model", "big-model"),
    ],
)
def test_default_title_model_is_the_smallest_listed(listed, own, chosen):
    assert titles.pick_title_model(Provider(name="p"), listed, own) == chosen


def test_answers_are_cleaned_into_titles():
    assert titles.clean_title('Title: "Oldest mountains on Earth."\nmore') == (
        "Oldest mountains on Earth"
    )
    assert titles.clean_title("  \n ") == ""
    assert titles.text_to_title("hi #delay=50 there #reasoning") == "hi there"


def test_staff_set_the_title_model_in_the_admin(staff_client, provider):
    url = f"/admin/chat/provider/{provider.pk}/change/"
    form = staff_client.get(url).content.decode()
    assert 'name="title_model"' in form
    staff_client.post(
        url,
        {
            "name": provider.name,
            "base_url": provider.base_url,
            "default_api": provider.default_api,
            "enabled": "on",
            "is_default": "on",
            "title_model": "gpt-5.4-mini",
        },
    )
    provider.refresh_from_db()
    assert provider.title_model == "gpt-5.4-mini"

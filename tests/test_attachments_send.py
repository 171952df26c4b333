"""Files going with a message: linked to the turn by the send (only the sender's own unsent
files), shown in the thread, read into the conversation sent upstream, carried by a new
version of the message, exported, and deleted with their chat."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse
from PIL import Image

from chat import export
from chat.models import Attachment, Thread, Turn
from chat.services import conversation
from chat.services.attachments import store
from chat.services.turns import launch, planning, registry
from tests.attachment_fixtures import image_bytes, upload_of
from tests.ws import ORIGIN, receive_until, socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


def attach(user, name: str, data: bytes, thread: Thread | None = None) -> Attachment:
    return store.store_upload(user, upload_of(name, data), thread_id=thread.pk if thread else None)


async def run_turn(user, thread, text: str, files: list[Attachment]) -> Turn:
    turn = await launch.start_turn(user, thread.pk, text, [a.pk for a in files])
    await registry.wait_for(turn.pk)
    return await Turn.objects.aget(pk=turn.pk)


async def test_a_sent_message_carries_its_files_and_the_thread_shows_them(
    thread, user, cookie_of, client
):
    shot = await sync_to_async(attach)(user, "shot.png", image_bytes("PNG", (600, 400)), thread)
    notes = await sync_to_async(attach)(user, "notes.txt", b"first line\nsecond", thread)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    await ws.send_to(
        json.dumps({"message": "Look at these", "attachments": [str(shot.pk), str(notes.pk)]})
    )
    messages = await receive_until(ws, r'data-status="completed"')
    turn = await Turn.objects.aget(thread=thread)
    await ws.disconnect()
    linked = [a async for a in Attachment.objects.filter(turn=turn).order_by("position")]
    assert [a.name for a in linked] == ["shot.png", "notes.txt"]
    created = next(m for m in messages if 'hx-swap-oob="beforeend"' in m)
    full, thumb = (
        reverse("chat:attachment", args=[shot.pk]),
        reverse("chat:attachment-thumbnail", args=[shot.pk]),
    )
    assert f'href="{full}"' in created and f'src="{thumb}"' in created
    await sync_to_async(client.force_login)(user)
    page = (await sync_to_async(client.get)(reverse("chat:thread", args=[thread.pk]))).content
    page = page.decode()
    assert f'<a href="{full}"' in page and f'src="{thumb}"' in page
    assert "notes.txt</a>" in page and "17\xa0bytes" in page
    assert 'name="attachments"' not in page  # no chip left in the composer: they were sent


async def test_a_message_may_be_only_files(thread, user):
    shot = await sync_to_async(attach)(user, "only.png", image_bytes(), thread)
    turn = await run_turn(user, thread, "  ", [shot])
    assert turn.status == Turn.Status.COMPLETED and turn.user_text == ""


async def test_someone_elses_or_a_sent_file_refuses_the_message(
    thread, user, other_user, make_thread, cookie_of
):
    theirs = await sync_to_async(attach)(other_user, "theirs.txt", b"secret")
    other_chat = await sync_to_async(make_thread)(user)
    elsewhere = await sync_to_async(attach)(user, "elsewhere.txt", b"x", other_chat)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    for file in (theirs, elsewhere):
        await ws.send_to(json.dumps({"message": "steal", "attachments": [str(file.pk)]}))
        reply = await ws.receive_from(timeout=5)
        assert "One of the attached files is no longer available" in reply
    await ws.send_to(json.dumps({"message": "bad", "attachments": ["../../etc/passwd"]}))
    assert "no longer available" in await ws.receive_from(timeout=5)
    await ws.disconnect()
    assert not await Turn.objects.filter(thread=thread).aexists()
    assert await Attachment.objects.filter(turn__isnull=True).acount() == 2  # untouched


async def test_a_sent_file_cannot_be_sent_again(thread, user):
    notes = await sync_to_async(attach)(user, "n.txt", b"once", thread)
    await run_turn(user, thread, "first", [notes])
    from chat.services.refusals import TurnRejected

    with pytest.raises(TurnRejected, match="no longer available"):
        await launch.start_turn(user, thread.pk, "again", [notes.pk])


async def test_too_many_files_in_one_message_are_refused(thread, user, settings, cookie_of):
    settings.MAX_FILES_PER_MESSAGE = 1
    a = await sync_to_async(attach)(user, "a.txt", b"a", thread)
    ws = socket(thread.pk, ORIGIN, await cookie_of(user))
    assert (await ws.connect())[0]
    ids = [str(a.pk), "0b0a5c1e-1d0c-4b7e-9a52-5f7c3b1d2e4f"]
    await ws.send_to(json.dumps({"message": "two", "attachments": ids}))
    assert "Too many files: a message can carry 1 file." in await ws.receive_from(timeout=5)
    await ws.disconnect()
    assert not await Turn.objects.filter(thread=thread).aexists()


def _big_photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3000, 1000), (10, 200, 10)).save(out, "JPEG")
    return out.getvalue()


def test_the_conversation_sent_upstream_carries_each_messages_files(thread, user, settings):
    settings.UPSTREAM_IMAGE_MAX_SIDE = 1024
    photo = attach(user, "photo.jpg", _big_photo(), thread)
    notes = attach(user, "notes.md", "# Über\nbody".encode(), thread)
    first = planning.plan_turn(
        user, thread_id=thread.pk, text="one", channel="c1", attachment_ids=[photo.pk, notes.pk]
    )
    Turn.objects.filter(pk=first.turn.pk).update(status=Turn.Status.COMPLETED, output_text="ok")
    pdf = attach(user, "r.pdf", b"%PDF-1.4\nbody", thread)
    second = planning.plan_turn(
        user, thread_id=thread.pk, text="two", channel="c2", attachment_ids=[pdf.pk]
    )
    request = second.request
    async_to_sync(request.load_files)()
    messages = conversation.history(
        request.path, request.user_text, request.files, request.files[request.turn_id]
    )
    assert [(m.role, m.text) for m in messages] == [
        ("user", "one"),
        ("assistant", "ok"),
        ("user", "two"),
    ]
    image, document = messages[0].files
    with Image.open(io.BytesIO(image.data)) as sent:
        assert sent.size == (1024, 341)  # shrunk to the provider's limit, proportions kept
    assert image.media_type == "image/jpeg" and image.name == "photo.jpg"
    assert document.text == "# Über\nbody" and document.media_type == "text/markdown"
    assert hashlib.sha256(document.data).hexdigest() == notes.sha256
    (sent_pdf,) = messages[2].files
    assert sent_pdf.data == b"%PDF-1.4\nbody" and sent_pdf.text is None


async def test_regenerating_carries_the_files_and_deleting_the_chat_deletes_them(
    thread, user, settings, django_capture_on_commit_callbacks
):
    shot = await sync_to_async(attach)(user, "shot.png", image_bytes(), thread)
    first = await run_turn(user, thread, "describe", [shot])
    again = await launch.branch_turn(user, first.pk)
    await registry.wait_for(again.pk)
    copies = [a async for a in Attachment.objects.filter(turn=again)]
    assert [(a.name, a.file.name) for a in copies] == [("shot.png", shot.file.name)]
    path = settings.MEDIA_ROOT / shot.file.name
    # One version's row goes: the other still names the file, which stays.
    await sync_to_async(_delete_on_commit)(Attachment.objects.filter(turn=again))
    assert path.exists()
    await sync_to_async(_delete_on_commit)(Thread.objects.filter(pk=thread.pk))
    assert not await Attachment.objects.aexists()
    assert not path.exists() and not (settings.MEDIA_ROOT / shot.thumbnail.name).exists()


def _delete_on_commit(queryset) -> None:
    from django.db import transaction

    with transaction.atomic():
        queryset.delete()


def test_a_new_chat_starts_with_files_uploaded_on_the_new_chat_page(
    logged_in_client, user, provider
):
    response = logged_in_client.post(
        reverse("chat:attachment-upload"), {"file": upload_of("a.csv", b"x,y\n1,2\n")}
    )
    attachment = Attachment.objects.get()
    assert 'name="attachments"' in response.content.decode()
    page = logged_in_client.get(reverse("chat:home")).content.decode()
    assert f'value="{attachment.pk}"' in page  # a reload keeps the chip
    logged_in_client.post(
        reverse("chat:new-thread"),
        {"message": "", "model": f"{provider.pk}:demo-chat", "attachments": [str(attachment.pk)]},
    )
    thread = Thread.objects.get()
    turn = thread.turns.get()
    async_to_sync(registry.wait_for)(turn.pk)
    attachment.refresh_from_db()
    assert (attachment.thread, attachment.turn) == (thread, turn)
    assert thread.title == "a.csv"


def test_comparing_models_with_files_is_refused_clearly(logged_in_client, user, provider):
    attach(user, "a.txt", b"hi")
    response = logged_in_client.post(
        reverse("chat:new-thread"),
        {
            "message": "compare",
            "model": f"{provider.pk}:demo-chat",
            "compare_models": [f"{provider.pk}:demo-chat", f"{provider.pk}:demo-fast"],
            "attachments": [str(Attachment.objects.get().pk)],
        },
    )
    assert "Comparing models does not take attached files" in response.content.decode()
    assert not Thread.objects.exists()


async def test_exports_list_and_link_the_files(thread, user):
    notes = await sync_to_async(attach)(user, "notes [v2].txt", b"hello", thread)
    await run_turn(user, thread, "see file", [notes])
    await thread.arefresh_from_db()
    path = await conversation.sync_to_async_path(thread)
    data = await sync_to_async(export.as_json)(thread, path)
    described = {
        "name": "notes [v2].txt",
        "type": "text/plain",
        "size": 5,
        "sha256": hashlib.sha256(b"hello").hexdigest(),
        "from_model": False,
        "url": reverse("chat:attachment", args=[notes.pk]),
    }
    assert data["turns"][0]["attachments"] == [described]
    assert data["tree"][0]["attachments"] == [described]
    markdown = await sync_to_async(export.as_markdown)(thread, path)
    url = reverse("chat:attachment", args=[notes.pk])
    assert f"- [notes \\[v2\\].txt]({url}) (text/plain, 5\xa0bytes)" in markdown


def test_unsent_uploads_older_than_a_day_are_purged_with_their_files(
    user, settings, django_capture_on_commit_callbacks
):
    import datetime as dt

    from django.utils import timezone

    from chat.services import retention

    old = attach(user, "old.txt", b"old")
    fresh = attach(user, "fresh.txt", b"fresh")
    Attachment.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    assert retention.purge(dry_run=True).unsent_files == 1
    with django_capture_on_commit_callbacks(execute=True):
        counts = retention.purge()
    assert counts.unsent_files == 1 and "1 unsent files deleted" in counts.describe()
    assert list(Attachment.objects.values_list("name", flat=True)) == ["fresh.txt"]
    assert not (settings.MEDIA_ROOT / old.file.name).exists()
    assert (settings.MEDIA_ROOT / fresh.file.name).exists()


async def test_an_expired_chats_files_are_deleted_by_retention(thread, user, settings):
    import datetime as dt

    from django.utils import timezone

    from chat.models import SiteSettings
    from chat.services import retention

    notes = await sync_to_async(attach)(user, "n.txt", b"keep?", thread)
    turn = await run_turn(user, thread, "old chat", [notes])
    long_ago = timezone.now() - dt.timedelta(days=100)
    await Turn.objects.filter(pk=turn.pk).aupdate(created_at=long_ago, finished_at=long_ago)
    await Thread.objects.filter(pk=thread.pk).aupdate(updated_at=long_ago)
    site = await sync_to_async(SiteSettings.load)()
    site.chat_retention_days = 30
    await site.asave()
    counts = await sync_to_async(_purge_committed)(retention)
    assert counts.chats == 1
    assert not await Attachment.objects.aexists()
    assert not (settings.MEDIA_ROOT / notes.file.name).exists()


def _purge_committed(retention):
    from django.db import transaction

    with transaction.atomic():
        return retention.purge()


def test_a_reload_keeps_the_unsent_chips_of_their_owner_only(
    thread, user, other_user, logged_in_client
):
    from django.test import Client

    from chat.models import Access, ThreadShare

    ThreadShare.objects.create(thread=thread, user=other_user, access=Access.COLLABORATE)
    draft = attach(user, "draft.txt", b"not sent yet", thread)
    url = reverse("chat:thread", args=[thread.pk])
    assert f'value="{draft.pk}"' in logged_in_client.get(url).content.decode()
    collaborator = Client()
    collaborator.force_login(other_user)
    assert str(draft.pk) not in collaborator.get(url).content.decode()


def test_continuing_a_response_reads_only_the_new_messages_files(thread, user):
    """With previous_response_id the upstream holds the earlier files: they are not read again
    (storage, shrinking), unless the upstream forgot the response (full-history retry)."""
    old = attach(user, "old.txt", b"earlier", thread)
    first = planning.plan_turn(user, thread_id=thread.pk, text="1", channel="c1",
                               attachment_ids=[old.pk])  # fmt: skip
    Turn.objects.filter(pk=first.turn.pk).update(
        status=Turn.Status.COMPLETED, output_text="ok", response_id="resp_1", api="responses"
    )
    Thread.objects.filter(pk=thread.pk).update(api="responses")
    new = attach(user, "new.txt", b"latest", thread)
    plan = planning.plan_turn(user, thread_id=thread.pk, text="2", channel="c2",
                              attachment_ids=[new.pk])  # fmt: skip
    async_to_sync(plan.request.load_files)()
    assert set(plan.request.files) == {plan.turn.pk}
    async_to_sync(plan.request.load_files)(whole_history=True)
    assert plan.request.files[first.turn.pk][0].data == b"earlier"


async def test_the_gateway_receives_the_stored_bytes_of_each_file(thread, user, demo_requests):
    """End to end: attachments → history → encoders → the demo gateway, which names what it
    got (an image's format, sides and SHA-256; a file's name, size and first line)."""
    shot = await sync_to_async(attach)(user, "shot.png", image_bytes("PNG", (600, 400)), thread)
    notes = await sync_to_async(attach)(user, "notes.txt", b"first line\nsecond", thread)
    turn = await run_turn(user, thread, "What did I send?", [shot, notes])
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert f"image: png 600×400 sha256:{shot.sha256[:8]}" in turn.output_text
    assert "file: notes.txt 17 bytes, first line: first line" in turn.output_text
    follow_up = await run_turn(user, thread, "And now?", [])
    assert follow_up.status == Turn.Status.COMPLETED
    assert demo_requests()[-1]["input"] == "And now?"  # continued: the files are not resent

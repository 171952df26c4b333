"""Who may read a file: the thread's rules (owner, collaborators, readers; a stranger, a
revoked share, a deleted thread: 404), an unsent file its uploader only; and how it is served
(type from our sniffing, inline only for decoded images, nosniff, streamed)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Access, Attachment, Team, ThreadShare, Turn
from chat.services import sharing
from chat.services.attachments import store
from tests.attachment_fixtures import image_bytes, upload_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(make_thread, user):
    """An image and a text file sent in a turn of ``user``'s thread."""
    thread = make_thread(user)
    turn = Turn.objects.create(thread=thread, author=user, user_text="files", status="completed")
    files = []
    for position, (name, data) in enumerate(
        [("shot.png", image_bytes("PNG", (50, 40))), ("page.txt", b"<script>alert(1)</script>")]
    ):
        attachment = store.store_upload(user, upload_of(name, data), thread_id=thread.pk)
        Attachment.objects.filter(pk=attachment.pk).update(turn=turn, position=position)
        files.append(attachment)
    return thread, files


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def status(client: Client, attachment: Attachment, name: str = "chat:attachment") -> int:
    return client.get(reverse(name, args=[attachment.pk])).status_code


def test_owner_collaborator_and_reader_may_read_strangers_may_not(
    sent, user, other_user, make_user
):
    thread, (image, text) = sent
    reader, collaborator = make_user("reader"), make_user("collaborator")
    team = Team.objects.create(name="Readers")
    team.members.add(reader)
    ThreadShare.objects.create(thread=thread, team=team, access=Access.READ)
    ThreadShare.objects.create(thread=thread, user=collaborator, access=Access.COLLABORATE)
    for person in (user, reader, collaborator):
        client = browser(person)
        assert status(client, image) == 200 and status(client, text) == 200
        assert status(client, image, "chat:attachment-thumbnail") == 200
    stranger = browser(other_user)
    assert status(stranger, image) == 404 and status(stranger, text) == 404
    assert status(stranger, image, "chat:attachment-thumbnail") == 404
    assert Client().get(reverse("chat:attachment", args=[image.pk])).status_code == 302


def test_a_revoked_share_and_a_deleted_thread_are_404(sent, other_user):
    thread, (image, _text) = sent
    share = ThreadShare.objects.create(thread=thread, user=other_user, access=Access.READ)
    client = browser(other_user)
    assert status(client, image) == 200
    sharing.revoke(thread, share.pk)
    assert status(client, image) == 404
    owner = browser(thread.owner)
    thread.delete()
    assert status(owner, image) == 404


def test_an_unsent_file_is_its_uploaders_only(make_thread, user, other_user):
    thread = make_thread(user)
    ThreadShare.objects.create(thread=thread, user=other_user, access=Access.COLLABORATE)
    draft = store.store_upload(user, upload_of("draft.txt", b"not yet"), thread_id=thread.pk)
    assert status(browser(user), draft) == 200
    assert status(browser(other_user), draft) == 404
    # Nor can a collaborator take it off someone else's message.
    browser(other_user).post(reverse("chat:attachment-remove", args=[draft.pk]))
    assert Attachment.objects.filter(pk=draft.pk).exists()


def test_images_are_inline_documents_are_downloads_never_sniffed(sent, user):
    _thread, (image, text) = sent
    client = browser(user)
    shown = client.get(reverse("chat:attachment", args=[image.pk]))
    assert shown["Content-Type"] == "image/png"
    assert shown["Content-Disposition"] == 'inline; filename="shot.png"'
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert b"".join(shown.streaming_content) == image.file.open("rb").read()
    download = client.get(reverse("chat:attachment", args=[text.pk]))
    assert download["Content-Type"] == "text/plain; charset=utf-8"
    assert download["Content-Disposition"] == 'attachment; filename="page.txt"'
    assert download["X-Content-Type-Options"] == "nosniff"
    assert b"".join(download.streaming_content) == b"<script>alert(1)</script>"
    thumb = client.get(reverse("chat:attachment-thumbnail", args=[image.pk]))
    assert thumb["Content-Type"] == "image/webp" and thumb.streaming
    assert status(client, text, "chat:attachment-thumbnail") == 404  # documents have none


def test_an_unknown_id_is_404(user):
    import uuid

    assert browser(user).get(reverse("chat:attachment", args=[uuid.uuid4()])).status_code == 404

"""Attachments in S3-compatible storage (``STORAGE_BACKEND=s3``, django-storages), against a
real S3 server process (moto in server mode, started by ``tests/attachment_fixtures.py``):
upload, read back, serve, delete."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from django.test import Client
from django.urls import reverse

from chat.models import Attachment, Turn
from tests.attachment_fixtures import image_bytes, upload_of

pytestmark = pytest.mark.django_db


def object_exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def test_upload_serve_and_delete_through_s3(
    s3_storage, logged_in_client, user, make_thread, django_capture_on_commit_callbacks, settings
):
    s3, bucket = s3_storage
    thread = make_thread(user)
    photo = image_bytes("PNG", (120, 90))
    response = logged_in_client.post(
        reverse("chat:attachment-upload"),
        {"file": upload_of("photo.png", photo), "thread": str(thread.pk)},
    )
    assert "refused" not in response.content.decode()
    attachment = Attachment.objects.get()
    stored = s3.get_object(Bucket=bucket, Key=attachment.file.name)["Body"].read()
    assert len(stored) == attachment.size and object_exists(s3, bucket, attachment.thumbnail.name)
    assert not (settings.MEDIA_ROOT / attachment.file.name).exists()  # not on local disk
    turn = Turn.objects.create(thread=thread, author=user, user_text="x", status="completed")
    Attachment.objects.filter(pk=attachment.pk).update(turn=turn)
    served = logged_in_client.get(reverse("chat:attachment", args=[attachment.pk]))
    assert served.status_code == 200 and b"".join(served.streaming_content) == stored
    other = Client()
    other.force_login(type(user).objects.create_user("eve", "e@example.com", "pw pw pw 42"))
    assert other.get(reverse("chat:attachment", args=[attachment.pk])).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        thread.delete()
    assert not object_exists(s3, bucket, attachment.file.name)
    assert not object_exists(s3, bucket, attachment.thumbnail.name)


def test_the_conversation_reads_files_back_from_s3(s3_storage, user):
    from chat.services.attachments import store, upstream

    attachment = store.store_upload(user, upload_of("notes.md", b"# hi\n"), thread_id=None)
    (sent,) = upstream.read_files({1: [attachment]})[1]
    assert (sent.data, sent.text, sent.media_type) == (b"# hi\n", "# hi\n", "text/markdown")


_STORE_AND_READ = """
import django
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
name = default_storage.save("probe/hello.txt", ContentFile(b"from the environment"))
print(default_storage.open(name).read().decode())
default_storage.delete(name)
print(default_storage.exists(name))
"""


def test_the_environment_selects_s3_with_a_secret_file(tmp_path, s3_storage, s3_server):
    """What an operator sets (README): STORAGE_BACKEND=s3, the bucket, the endpoint, the keys
    (the secret from a mounted file), in a fresh process."""
    import subprocess
    import sys

    from tests.attachment_fixtures import S3_KEY_ID, S3_REGION, S3_SECRET
    from tests.test_deploy import ROOT, _environment

    _client, bucket = s3_storage
    secret = tmp_path / "s3-secret"
    secret.write_text(S3_SECRET + "\n")
    env = _environment(
        tmp_path,
        STORAGE_BACKEND="s3",
        S3_BUCKET=bucket,
        S3_ENDPOINT_URL=s3_server,
        S3_ACCESS_KEY_ID=S3_KEY_ID,
        S3_SECRET_ACCESS_KEY_FILE=str(secret),
        S3_REGION=S3_REGION,
    )
    run = subprocess.run(
        [sys.executable, "-c", _STORE_AND_READ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.split("\n")[:2] == ["from the environment", "False"], run.stderr[-2000:]
    env.pop("S3_BUCKET")
    run = subprocess.run(
        [sys.executable, "-c", _STORE_AND_READ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "STORAGE_BACKEND=s3 needs S3_BUCKET." in run.stderr

"""Uploading files to attach: what is accepted, what is refused and why (each limit, types
sniffed from the bytes, broken and hostile files), and how a stored file is kept."""

from __future__ import annotations

import io
import os
import stat

import pytest
from django.urls import reverse
from PIL import Image

from chat.models import Attachment, UserQuota
from tests.attachment_fixtures import image_bytes, upload_of

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def post_file(client, name: str, data: bytes, thread=None, content_type="image/png"):
    payload = {"file": upload_of(name, data, content_type)}
    if thread is not None:
        payload["thread"] = str(thread.pk)
    return client.post(reverse("chat:attachment-upload"), payload)


def refusal(response) -> str:
    assert response.status_code == 200
    text = response.content.decode()
    assert 'class="attachment-chip refused"' in text, text
    return " ".join(text.split())


def test_an_image_becomes_a_chip_with_its_thumbnail_and_is_stored_privately(
    logged_in_client, user, settings
):
    response = post_file(logged_in_client, "shot.png", image_bytes("PNG", (640, 480)))
    attachment = Attachment.objects.get()
    html = response.content.decode()
    assert f'value="{attachment.pk}"' in html  # the hidden input the send carries
    assert "shot.png" in html and reverse("chat:attachment-thumbnail", args=[attachment.pk]) in html
    assert (attachment.kind, attachment.content_type) == ("image", "image/png")
    assert (attachment.width, attachment.height) == (640, 480)
    assert attachment.owner == user and attachment.turn is None
    path = settings.MEDIA_ROOT / attachment.file.name
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    with Image.open(settings.MEDIA_ROOT / attachment.thumbnail.name) as thumb:
        assert max(thumb.size) == 320


def test_documents_pdf_text_markdown_csv_json_and_code_are_accepted(logged_in_client):
    cases = {
        "report.pdf": (PDF, "application/pdf"),
        "notes.txt": ("Grüße\nsecond line".encode(), "text/plain"),
        "README.md": (b"# Title\n", "text/markdown"),
        "table.csv": (b"a,b\n1,2\n", "text/csv"),
        "data.json": (b'{"a": 1}', "application/json"),
        "main.py": (b"print('hi')\n", "text/plain"),
    }
    for name, (data, _) in cases.items():
        assert "refused" not in post_file(logged_in_client, name, data).content.decode()
    stored = dict(Attachment.objects.values_list("name", "content_type"))
    assert stored == {name: content_type for name, (_, content_type) in cases.items()}


def test_metadata_is_stripped_from_photos(logged_in_client, settings):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {2: (51, 30, 0)}  # GPS latitude
    post_file(logged_in_client, "photo.jpg", image_bytes("JPEG", (80, 60), exif=exif))
    attachment = Attachment.objects.get()
    with Image.open(settings.MEDIA_ROOT / attachment.file.name) as stored:
        assert not stored.getexif()
        assert stored.size == (80, 60)


def test_a_renamed_executable_is_refused_as_a_type_not_allowed(logged_in_client):
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200
    text = refusal(post_file(logged_in_client, "cat.png", exe))
    assert "“cat.png” is not a type that can be attached" in text
    assert not Attachment.objects.exists()


@pytest.mark.parametrize(
    "name, data",
    [
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("page.html", b"<html><script>alert(1)</script></html>"),
        ("notes.txt", b"\xff\xfe\x00binary\x00"),
    ],
)
def test_svg_html_and_binary_text_are_refused(logged_in_client, name, data):
    assert "is not a type that can be attached" in refusal(post_file(logged_in_client, name, data))
    assert not Attachment.objects.exists()


def test_a_zero_byte_file_is_refused(logged_in_client):
    assert "This file is empty." in refusal(post_file(logged_in_client, "empty.txt", b""))


def test_a_truncated_png_is_refused(logged_in_client):
    noisy = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    whole = out.getvalue()
    text = refusal(post_file(logged_in_client, "cut.png", whole[: len(whole) // 2]))
    assert "This image is damaged or incomplete" in text
    assert not Attachment.objects.exists()


def test_a_50_megapixel_image_is_refused_as_a_decompression_bomb(logged_in_client):
    # A tiny file that would decode to 50 million pixels: 10,000 by 5,000 of one colour.
    out = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(out, "PNG")  # 1 bit a pixel: cheap to make here
    bomb = out.getvalue()
    assert len(bomb) < 1_000_000
    text = refusal(post_file(logged_in_client, "bomb.png", bomb))
    assert "10000 by 5000 pixels (50 megapixels)" in text
    assert "images up to 40 megapixels" in text
    assert not Attachment.objects.exists()


def test_a_file_over_max_upload_bytes_is_refused(logged_in_client, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    text = refusal(post_file(logged_in_client, "big.txt", b"x" * 1001))
    assert "too large (1001 bytes); files up to 1000 bytes" in text
    assert "refused" not in post_file(logged_in_client, "ok.txt", b"x" * 1000).content.decode()


def test_an_oversized_body_is_refused_before_it_is_read(logged_in_client, settings):
    settings.MAX_UPLOAD_BYTES = 10
    response = post_file(logged_in_client, "big.txt", b"y" * 200_000)
    assert "is too large" in refusal(response)


def test_more_files_than_a_message_carries_are_refused(logged_in_client, settings):
    settings.MAX_FILES_PER_MESSAGE = 2
    for index in range(2):
        post_file(logged_in_client, f"f{index}.txt", b"text")
    assert "Too many files: a message can carry 2 files." in refusal(
        post_file(logged_in_client, "f3.txt", b"text")
    )
    assert Attachment.objects.count() == 2


def test_the_daily_quota_and_a_staff_set_override(logged_in_client, user, settings):
    settings.UPLOAD_BYTES_PER_DAY = 10
    post_file(logged_in_client, "a.txt", b"123456")
    assert "Your daily upload quota is used up: 6 bytes of 10 bytes today." in refusal(
        post_file(logged_in_client, "b.txt", b"123456")
    )
    UserQuota.objects.create(user=user, upload_bytes_per_day=100)
    assert "refused" not in post_file(logged_in_client, "b.txt", b"123456").content.decode()
    UserQuota.objects.filter(user=user).update(upload_bytes_per_day=0)
    assert "may not upload files" in refusal(post_file(logged_in_client, "c.txt", b"1"))


def test_a_hostile_file_name_is_cleaned(logged_in_client):
    post_file(logged_in_client, "../../etc/pass\x00wd\x1b[31m\u202e.txt", b"hello")
    attachment = Attachment.objects.get()
    assert attachment.name == "passwd[31m.txt"
    assert "/" not in attachment.file.name.split("attachments/", 1)[1].split("/", 2)[-1]
    response = logged_in_client.get(reverse("chat:attachment", args=[attachment.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="passwd[31m.txt"'


def test_a_long_name_is_cut_keeping_its_extension(logged_in_client):
    post_file(logged_in_client, "a" * 300 + ".csv", b"a,b\n")
    name = Attachment.objects.get().name
    assert len(name) == 120 and name.endswith(".csv")


def test_uploading_to_a_chat_one_may_only_read_is_refused(client, user, other_user, make_thread):
    from chat.models import Access, ThreadShare

    thread = make_thread(user)
    ThreadShare.objects.create(thread=thread, user=other_user, access=Access.READ)
    client.force_login(other_user)
    assert "read-only" in refusal(post_file(client, "a.txt", b"hi", thread=thread))
    stranger_thread = make_thread(user)
    ThreadShare.objects.filter(thread=thread).delete()
    assert "This chat no longer exists." in refusal(
        post_file(client, "a.txt", b"hi", thread=stranger_thread)
    )
    assert not Attachment.objects.exists()


def test_upload_needs_login_and_csrf(client, user):
    response = post_file(client, "a.txt", b"hi")
    assert response.status_code == 302 and not Attachment.objects.exists()
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert post_file(strict, "a.txt", b"hi").status_code == 403


def test_removing_an_unsent_file_deletes_it_from_storage(
    logged_in_client, settings, django_capture_on_commit_callbacks
):
    post_file(logged_in_client, "shot.png", image_bytes())
    attachment = Attachment.objects.get()
    paths = [
        settings.MEDIA_ROOT / attachment.file.name,
        settings.MEDIA_ROOT / attachment.thumbnail.name,
    ]
    assert all(p.exists() for p in paths)
    with django_capture_on_commit_callbacks(execute=True):
        logged_in_client.post(reverse("chat:attachment-remove", args=[attachment.pk]))
    assert not Attachment.objects.exists()
    assert not any(p.exists() for p in paths)


def test_under_daphne_the_body_is_left_to_django(live_app, tmp_path):
    """Twisted used to parse every multipart body itself, on the event loop that streams every
    answer (a 10 MB upload stopped them all for about a second: bench/attachments.py), and
    answered 400 to a body its parser did not like. Now only Django reads it, in a thread."""
    import httpx

    from tests.support.browser import PASSWORD
    from tests.support.seed import seed_data_dir

    seed_data_dir(tmp_path, users=[{"username": "ann", "password": PASSWORD}])
    with httpx.Client(base_url=live_app, trust_env=False, timeout=30) as http:
        login = http.get("/accounts/login/")
        token = login.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        http.post(
            "/accounts/login/",
            data={"username": "ann", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": live_app + "/accounts/login/"},
        )
        headers = {"X-CSRFToken": http.cookies["csrftoken"], "Referer": live_app + "/"}
        not_mime = http.post(
            "/files/upload/",
            content=b"no parts here",
            headers={**headers, "Content-Type": "multipart/form-data; boundary=xyz"},
        )
        assert not_mime.status_code == 200 and "No file arrived" in not_mime.text
        real = http.post(
            "/files/upload/", files={"file": ("a.csv", b"x,y\n", "text/csv")}, headers=headers
        )
        assert 'name="attachments"' in real.text


def test_staff_set_a_users_daily_upload_quota_in_the_admin(staff_client, client):
    """The quota form of a user (Admin → Users) has the field; what staff save applies."""
    from django.contrib.auth import get_user_model

    response = staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "uploader",
            "email": "uploader@example.com",
            "role": "member",
            "usable_password": "true",
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
            "quota-TOTAL_FORMS": "1",
            "quota-INITIAL_FORMS": "0",
            "quota-MIN_NUM_FORMS": "0",
            "quota-MAX_NUM_FORMS": "1",
            "quota-0-upload_bytes_per_day": "4",
        },
    )
    assert response.status_code == 302
    uploader = get_user_model().objects.get(username="uploader")
    assert UserQuota.objects.get(user=uploader).upload_bytes_per_day == 4
    client.force_login(uploader)
    assert "0 bytes of 4 bytes today" in refusal(post_file(client, "five.txt", b"12345"))


def test_webp_and_animated_gif_are_accepted_and_keep_their_frames(logged_in_client, settings):
    post_file(logged_in_client, "pic.webp", image_bytes("WEBP", (30, 20)))
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    post_file(logged_in_client, "anim.gif", out.getvalue())
    webp, gif = Attachment.objects.order_by("name").reverse()
    assert (webp.content_type, webp.width, webp.height) == ("image/webp", 30, 20)
    assert gif.content_type == "image/gif"
    with Image.open(settings.MEDIA_ROOT / gif.file.name) as stored:
        assert stored.n_frames == 3

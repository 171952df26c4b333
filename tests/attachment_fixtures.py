"""Attachments in tests: a private storage directory per test, files to upload (made with
Pillow, so every case is exactly what it claims), and a real S3-compatible server (moto in
server mode, a separate process on a free port; ``pip install '.[dev]'`` brings it)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from devtools.launch import free_port
from tests.gateway_fixtures import stop_process

S3_KEY_ID, S3_SECRET, S3_REGION = "testing-key", "testing-secret", "us-east-1"
_START_TIMEOUT = 30


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    """Uploads of a test go to its own directory, never the checkout's data/."""
    settings.MEDIA_ROOT = tmp_path / "uploads"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), **save: object) -> bytes:
    out = io.BytesIO()
    mode = "RGB" if fmt in ("JPEG",) else "RGBA"
    Image.new(mode, size, (200, 30, 30)).save(out, fmt, **save)
    return out.getvalue()


def upload_of(name: str, data: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server running for the session."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for(process, url, log)
            yield url
        finally:
            stop_process(process)


def _wait_for(process: subprocess.Popen, url: str, log) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    log.seek(0)
    pytest.fail(f"moto_server did not start at {url}:\n{log.read()[-4000:]!r}", pytrace=False)


@pytest.fixture
def s3_storage(settings, s3_server):
    """Attachments stored in a fresh bucket of the S3 server, as ``STORAGE_BACKEND=s3`` sets."""
    import boto3

    bucket = f"switchboard-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_server,
                "access_key": S3_KEY_ID,
                "secret_key": S3_SECRET,
                "region_name": S3_REGION,
                "default_acl": "private",
                "file_overwrite": False,
                "querystring_auth": True,
            },
        },
    }
    return client, bucket

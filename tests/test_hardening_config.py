"""Issue 11, configuration hardening: the websocket origin check (5), login throttling keyed like
authentication and the lockout list (6), private data files (7), the demo gateway's mount (8),
credentials in error pages (9), SQLite options from DATABASE_URL (13), FIRST_RUN_SETUP (16), and
the strict environment helpers every new setting goes through."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, technical_500_response

from chat import checks, demo_mount, startup
from chat.error_reports import mask_url_credentials
from chat.models import AuditLogEntry
from chat.routing import websocket_application
from chat.services import audit, login_throttle
from chat.startup import demo_gateway_key
from project import settings as project_settings
from tests.test_deploy import ROOT, _environment

# -- 5. websocket origin: scheme, host and port ----------------------------------------------------


# Sockets read the session from other threads: real transactions, not a rolled-back one.
sockets_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(make_thread, user):
    return make_thread(user)


async def handshake(
    thread_id: int, cookie, origin: str | None, host: str, scheme: str = "ws", *extra
) -> bool:
    """Whether a browser on ``origin`` may open the thread's socket on ``scheme://host``."""

    async def over_scheme(scope, receive, send):
        return await websocket_application({**scope, "scheme": scheme}, receive, send)

    headers = [(b"host", host.encode()), cookie, *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    ws = WebsocketCommunicator(over_scheme, f"/ws/threads/{thread_id}/", headers=headers)
    connected, _ = await ws.connect()
    await ws.disconnect()
    return connected


@sockets_db
@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1:9999", "127.0.0.1", "ws"),  # another port on the same host
        ("https://127.0.0.1", "127.0.0.1", "ws"),  # another scheme
        ("http://127.0.0.1", "127.0.0.1", "wss"),  # a plain-HTTP page on a TLS socket
        ("http://127.0.0.1:8000", "127.0.0.1:8001", "ws"),
        ("http://evil.example", "evil.example", "ws"),  # DNS rebinding: host not allowed
        ("null", "127.0.0.1", "ws"),
        ("http://user@127.0.0.1", "127.0.0.1", "ws"),
        (None, "127.0.0.1", "ws"),
    ],
)
async def test_websocket_from_another_origin_is_refused(
    thread, user, cookie_of, origin, host, scheme
):
    assert not await handshake(thread.pk, await cookie_of(user), origin, host, scheme)


@sockets_db
@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://127.0.0.1", "127.0.0.1", "ws"),
        ("http://127.0.0.1:80", "127.0.0.1", "ws"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
        ("https://localhost", "localhost", "wss"),
        ("http://[::1]:8000", "[::1]:8000", "ws"),
    ],
)
async def test_websocket_from_the_sites_own_origin_is_accepted(
    thread, user, cookie_of, origin, host, scheme
):
    assert await handshake(thread.pk, await cookie_of(user), origin, host, scheme)


@sockets_db
async def test_behind_a_proxy_the_forwarded_proto_decides_the_scheme(
    thread, user, cookie_of, settings
):
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    cookie = await cookie_of(user)
    https = (b"x-forwarded-proto", b"https")
    http = (b"x-forwarded-proto", b"http")
    assert await handshake(
        thread.pk, cookie, "https://chat.example.org", "chat.example.org", "ws", https
    )
    assert not await handshake(
        thread.pk, cookie, "http://chat.example.org", "chat.example.org", "ws", https
    )
    assert not await handshake(
        thread.pk, cookie, "https://chat.example.org", "chat.example.org", "ws", http
    )


@sockets_db
async def test_csrf_trusted_origins_are_accepted_with_their_port(thread, user, cookie_of, settings):
    settings.ALLOWED_HOSTS = ["chat.example.org", "127.0.0.1"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.org", "https://*.team.example"]
    cookie = await cookie_of(user)
    # A proxy that does not say the request came over HTTPS: the trusted origin still matches.
    assert await handshake(thread.pk, cookie, "https://chat.example.org", "chat.example.org")
    assert await handshake(thread.pk, cookie, "https://eu.team.example", "127.0.0.1")
    assert not await handshake(thread.pk, cookie, "https://chat.example.org:8443", "127.0.0.1")
    assert not await handshake(thread.pk, cookie, "http://chat.example.org", "127.0.0.1")
    assert not await handshake(thread.pk, cookie, "https://eu.team.example.evil", "127.0.0.1")
    # Never on a host that is not allowed, whatever the origin.
    assert not await handshake(thread.pk, cookie, "https://chat.example.org", "evil.example")


# -- 6. login throttling keyed as authentication looks names up; lockouts for staff ----------------


# Fullwidth letters: NFKC (what Django's username field applies) turns them into "eve".
FULLWIDTH_E = "\uff45ve"  # a fullwidth first letter
FULLWIDTH_EVE = "\uff45\uff56\uff45"
FULLWIDTH_CAPITAL_EVE = "\uff25\uff56\uff45"


def login(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


@pytest.fixture
def eve(make_user):
    return make_user("eve")


def test_unicode_variants_of_a_username_share_its_lockout(client, eve, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    # Fullwidth, upper case, padded: each one is a failure for "eve" (from three addresses).
    for name, ip in [
        (FULLWIDTH_E, "10.0.0.1"),
        ("EVE", "10.0.0.2"),
        (f" {FULLWIDTH_CAPITAL_EVE} ", "10.0.0.3"),
    ]:
        assert login(client, name, "wrong", ip).status_code == 200
    for name in [
        "eve",
        FULLWIDTH_EVE,
        FULLWIDTH_E,
    ]:  # the right password, in any spelling: refused for now
        response = login(client, name, "correct horse 42", ip="10.0.0.9")
        assert response.status_code == 429, name
    assert "_auth_user_id" not in client.session


def test_the_fullwidth_spelling_logs_in_as_the_same_user():
    # Why the key must be NFKC: authentication itself maps the fullwidth name to "eve".
    assert (
        login_throttle.normalise_username(FULLWIDTH_E)
        == login_throttle.normalise_username("EVE")
        == "eve"
    )
    assert (
        login_throttle.normalise_username("\ufb01ona") == "fiona"
    )  # ligature, NFKC as Django applies


def test_failed_logins_and_lockouts_are_in_the_audit_log(client, eve, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 2
    login(client, FULLWIDTH_E, "wrong", ip="10.1.1.1")
    login(client, "eve", "wrong", ip="10.1.1.2")
    entries = list(AuditLogEntry.objects.filter(object_type="login").order_by("pk"))
    assert [(e.action, e.object_repr, e.new_value) for e in entries[:2]] == [
        ("login failed", FULLWIDTH_E, "10.1.1.1"),
        ("login failed", "eve", "10.1.1.2"),
    ]
    assert entries[2].action == "locked out" and entries[2].object_repr == "username eve"
    assert entries[2].new_value.startswith("2 (until ")
    assert len(entries) == 3


def test_staff_see_and_clear_lockouts(client, eve, staff, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 2
    settings.LOGIN_FAILURES_PER_IP = 3
    for name in ["eve", FULLWIDTH_E, "nobody"]:
        login(client, name, "wrong", ip="192.0.2.7")
    client.force_login(staff)
    page = client.get("/admin/lockouts/")
    html = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert "username eve" in html and "IP 192.0.2.7" in html and "nobody" not in html
    assert client.get("/admin/auth/user/").content.decode().count("/admin/lockouts/") == 1

    user_lockout = next(item for item in login_throttle.current_lockouts() if item.kind == "user")
    assert (user_lockout.value, user_lockout.failures) == ("eve", 2)
    response = client.post("/admin/lockouts/", {"lockout": user_lockout.id}, follow=True)
    assert "Cleared: username eve may try to log in again." in response.content.decode()
    assert [item.kind for item in login_throttle.current_lockouts()] == ["ip"]
    cleared = AuditLogEntry.objects.get(action="lockout cleared")
    assert (cleared.actor_name, cleared.object_repr, cleared.old_value) == (
        "root",
        "username eve",
        "2",
    )
    client.logout()
    # Cleared for the username; the IP is still locked out, another address gets in.
    assert login(client, "eve", "correct horse 42", ip="192.0.2.7").status_code == 429
    assert login(client, "eve", "correct horse 42", ip="192.0.2.8").status_code == 302


def test_members_cannot_see_lockouts(client, user):
    client.force_login(user)
    response = client.get("/admin/lockouts/")
    assert response.status_code == 302 and "/admin/login/" in response.url
    assert client.post("/admin/lockouts/", {"lockout": "user:x"}).status_code == 302


def test_clearing_an_unknown_or_ended_lockout_changes_nothing(staff_client):
    response = staff_client.post("/admin/lockouts/", {"lockout": "user:" + "0" * 32}, follow=True)
    assert "That lockout had already ended." in response.content.decode()
    assert not AuditLogEntry.objects.filter(action="lockout cleared").exists()


def test_lockouts_from_many_threads_at_once_are_all_listed(db, settings, monkeypatch):
    settings.LOGIN_FAILURES_PER_USERNAME = 1
    settings.LOGIN_FAILURES_PER_IP = 0
    monkeypatch.setattr(audit, "record_event", lambda *args, **kwargs: None)
    names = [f"member{n}" for n in range(24)]
    workers = [
        threading.Thread(target=login_throttle.record_login_failure, args=("10.0.0.1", name))
        for name in names
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(item.value for item in login_throttle.current_lockouts()) == sorted(names)


# -- 7. the data directory and its files are private ----------------------------------------------

_FILE_MODES = """
import json, os, stat
from pathlib import Path
from django.conf import settings
from project.startup_files import setup_django
setup_django()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE note (text TEXT)")
    cursor.execute("INSERT INTO note VALUES ('x')")
    saved = default_storage.save("avatars/a.png", ContentFile(b"png"))
    names = ["", "secret_key", "db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm",
             "uploads", "uploads/avatars", "uploads/" + saved]
    print(json.dumps({name: oct(stat.S_IMODE((settings.DATA_DIR / name).stat().st_mode))
                      for name in names}))
"""


def test_data_directory_files_are_private_whatever_the_umask(tmp_path):
    data = tmp_path / "fresh" / "data"
    env = _environment(data)
    env.pop("DJANGO_SECRET_KEY")  # kept in data/secret_key
    result = subprocess.run(
        [sys.executable, "-c", f"import os; os.umask(0o022); exec({_FILE_MODES!r})"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modes = json.loads(result.stdout)
    assert modes.pop("") == modes.pop("uploads") == modes.pop("uploads/avatars") == "0o700"
    assert set(modes.values()) == {"0o600"}, modes


@pytest.fixture
def loose_data_dir(tmp_path, settings):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "secret_key").write_text("k")
    (data / "secret_key").chmod(0o644)
    settings.DATA_DIR = data
    settings.MEDIA_ROOT = data / "uploads"
    return data


def test_loosened_modes_are_warned_about_with_the_fix(loose_data_dir, caplog):
    warnings = [w.msg for w in checks.check_private_files() if str(loose_data_dir) in w.msg]
    assert warnings == [
        f"{loose_data_dir} has mode 0755: other users can read it. "
        f"Run `chmod 700 {loose_data_dir}`.",
        f"{loose_data_dir}/secret_key has mode 0644: other users can read it. "
        f"Run `chmod 600 {loose_data_dir}/secret_key`.",
    ]
    startup.warn_about_loose_file_modes()  # Daphne runs no system checks: the log says it
    assert f"chmod 600 {loose_data_dir}/secret_key" in caplog.text

    loose_data_dir.chmod(0o700)
    (loose_data_dir / "secret_key").chmod(0o600)
    assert not [w for w in checks.check_private_files() if str(loose_data_dir) in w.msg]


def test_the_sqlite_wal_and_shm_files_are_checked_too(db, settings):
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite only")
    directories, files = checks.private_paths()
    name = str(database["NAME"])
    assert {Path(name), Path(name + "-wal"), Path(name + "-shm")} <= set(files)
    assert {Path(settings.DATA_DIR), Path(settings.MEDIA_ROOT)} == set(directories)


# -- 8. the demo gateway: only without a real gateway, and behind the host checks ------------------


def _settings_of(data_dir: Path, *names: str, **env: str) -> dict:
    script = textwrap.dedent(
        f"""
        import json
        from django.conf import settings
        values = {{name: getattr(settings, name) for name in {list(names)!r}}}
        print(json.dumps(values, default=str))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_environment(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_demo_gateway_is_off_by_default_when_a_real_gateway_is_configured(tmp_path):
    real = {"OPENAI_BASE_URL": "https://gateway.example/v1"}
    assert _settings_of(tmp_path, "DEMO_GATEWAY_ENABLED") == {"DEMO_GATEWAY_ENABLED": True}
    assert _settings_of(tmp_path, "DEMO_GATEWAY_ENABLED", **real)["DEMO_GATEWAY_ENABLED"] is False
    explicit = _settings_of(tmp_path, "DEMO_GATEWAY_ENABLED", **real, DEMO_GATEWAY_ENABLED="1")
    assert explicit["DEMO_GATEWAY_ENABLED"] is True


async def _django_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def mounted(settings):
    settings.DEMO_GATEWAY_ENABLED = True
    settings.DEMO_GATEWAY_URL = "http://127.0.0.1:8000/demo/v1"
    settings.ALLOWED_HOSTS = ["chat.example.org", "127.0.0.1"]

    def get(url: str, **headers: str) -> httpx.Response:
        app = demo_mount.with_demo_gateway(_django_app)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {demo_gateway_key()}", **headers}

        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.get(url, headers=headers)

        import asyncio

        return asyncio.run(fetch())

    return get


def test_demo_gateway_refuses_hosts_that_are_not_allowed(mounted):
    assert mounted("http://evil.example/demo/v1/models").status_code == 400
    assert mounted("http://chat.example.org/demo/v1/models").status_code == 200


def test_demo_gateway_redirects_to_https_like_every_page(mounted, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = mounted("http://chat.example.org/demo/v1/models?x=1")
    assert response.status_code == 301
    assert response.headers["location"] == "https://chat.example.org/demo/v1/models?x=1"
    assert mounted("https://chat.example.org/demo/v1/models").status_code == 200
    proxied = mounted("http://chat.example.org/demo/v1/models", **{"X-Forwarded-Proto": "https"})
    assert proxied.status_code == 200
    # Switchboard's own calls to DEMO_GATEWAY_URL (plain HTTP on loopback) are served.
    own = mounted("http://127.0.0.1:8000/demo/v1/models")
    assert own.status_code == 200 and "demo-chat" in own.text
    assert mounted("http://127.0.0.1:8000/").status_code == 204  # the rest is Django's


def test_without_the_demo_gateway_django_serves_everything(settings):
    settings.DEMO_GATEWAY_ENABLED = False
    assert demo_mount.with_demo_gateway(_django_app) is _django_app


# -- 9. no password of a URL-valued setting on the DEBUG error page --------------------------------


def _error_pages(request) -> tuple[str, str]:
    """The DEBUG page and the text report (error e-mails) of an exception in a view. Raised
    here, away from the test's own variables, which the page shows too."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        html = technical_500_response(request, *sys.exc_info()).content.decode()
        return html, ExceptionReporter(request, *sys.exc_info()).get_traceback_text()


def test_debug_error_page_masks_passwords_in_every_url_setting(settings):
    passwords = [secrets.token_hex(8) for _ in range(5)]
    db, redis, gateway, oidc, ldap = passwords
    settings.DEBUG = True
    settings.DATABASE_URL = f"postgres://chat:{db}@db.internal:5432/switchboard"
    settings.REDIS_URL = f"redis://:{redis}@cache.internal:6379/0"
    settings.OPENAI_BASE_URL = f"https://gw-user:{gateway}@gateway.example/v1"
    settings.OIDC_OP_DISCOVERY_URL = f"https://client:{oidc}@idp.example/.well-known/"
    settings.LDAP_SERVER_URI = f"ldaps://binder:{ldap}@ldap.example"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": settings.REDIS_URL,
        }
    }
    # Under runserver the environment is part of request.META.
    html, text = _error_pages(RequestFactory().get("/boom", DATABASE_URL=settings.DATABASE_URL))
    for password in passwords:
        assert password not in html and password not in text
    # The rest of each URL is still there to debug with.
    assert "postgres://chat:********@db.internal:5432/switchboard" in html
    assert "ldaps://binder:********@ldap.example" in text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:********@h:6379/0"),
        ("https://sk-token@gateway.example/v1", "https://********@gateway.example/v1"),
        ("postgres://u:p%40ss@db/x", "postgres://u:********@db/x"),
        (
            "https://idp.example/?client_secret=abc&x=1",
            "https://idp.example/?client_secret=********&x=1",
        ),
        ("a=redis://:one@h b=amqp://u:two@h2", "a=redis://:********@h b=amqp://u:********@h2"),
        ("https://gateway.example/v1", "https://gateway.example/v1"),
        ("user@example.com", "user@example.com"),
    ],
)
def test_url_credentials_are_masked(text, masked):
    assert mask_url_credentials(text) == masked


# -- 13. SQLite options however SQLite is configured -----------------------------------------------


def test_sqlite_from_database_url_gets_the_same_options(tmp_path):
    default = _settings_of(tmp_path, "DATABASES")["DATABASES"]["default"]
    url = f"sqlite:///{tmp_path}/other.sqlite3"
    from_url = _settings_of(tmp_path, "DATABASES", DATABASE_URL=url)["DATABASES"]["default"]
    assert from_url["NAME"] == f"{tmp_path}/other.sqlite3"
    assert from_url["OPTIONS"] == default["OPTIONS"]
    assert from_url["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert from_url["OPTIONS"]["timeout"] == 20
    assert from_url["CONN_MAX_AGE"] is None
    assert from_url["TEST"]["NAME"].startswith(f"{tmp_path}/test-db-")
    subprocess.run(  # the start-up step of every entry point makes that file private too
        [sys.executable, "-c", "from project.startup_files import prepare; prepare()"],
        cwd=ROOT,
        env=_environment(tmp_path, DATABASE_URL=url),
        check=True,
        timeout=60,
    )
    assert stat.S_IMODE(os.stat(from_url["NAME"]).st_mode) == 0o600


# -- 16. FIRST_RUN_SETUP ---------------------------------------------------------------------------


def test_first_run_setup_can_be_turned_off(client, db, settings):
    settings.FIRST_RUN_SETUP = False
    assert client.get("/").url.startswith("/accounts/login/")  # no redirect to /setup/
    page = client.get("/setup/")
    assert page.status_code == 404 and "manage.py createsuperuser" in page.content.decode()
    claim = client.post(
        "/setup/",
        {
            "username": "mallory",
            "password1": "a long passphrase 7",
            "password2": "a long passphrase 7",
        },
    )
    assert claim.status_code == 404
    assert not get_user_model().objects.exists()


def test_deploy_check_warns_while_an_unclaimed_setup_is_open(db, settings, make_user):
    assert [w.id for w in checks.check_first_run_setup()] == ["chat.W002"]
    settings.FIRST_RUN_SETUP = False
    assert checks.check_first_run_setup() == []
    settings.FIRST_RUN_SETUP = True
    make_user("admin", staff=True)
    assert checks.check_first_run_setup() == []


def test_manage_py_check_deploy_names_the_open_setup(tmp_path):
    production = {
        "DJANGO_ALLOWED_HOSTS": "chat.example.org",
        "DEMO_GATEWAY_ENABLED": "0",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=_environment(tmp_path, **production),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "chat.W002" in result.stdout + result.stderr
    assert "createsuperuser" in result.stdout + result.stderr


# -- strict environment helpers --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ture", "2", "enabled"])
def test_a_mistyped_switch_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("FIRST_RUN_SETUP", value)
    with pytest.raises(ImproperlyConfigured, match="FIRST_RUN_SETUP"):
        project_settings.env_bool("FIRST_RUN_SETUP", True)


def test_switches_and_numbers_read_as_written(monkeypatch):
    for value, expected in [("0", False), ("off", False), ("YES", True), (" 1 ", True), ("", True)]:
        monkeypatch.setenv("FIRST_RUN_SETUP", value)
        assert project_settings.env_bool("FIRST_RUN_SETUP", True) is expected
    monkeypatch.setenv("CONN_MAX_AGE", "sixty")
    with pytest.raises(ImproperlyConfigured, match="CONN_MAX_AGE='sixty': expected a whole number"):
        project_settings.env_int("CONN_MAX_AGE", 60)
    monkeypatch.setenv("CONN_MAX_AGE", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        project_settings.env_int("CONN_MAX_AGE", 60, minimum=0)


def test_a_mistyped_setting_names_itself_when_the_server_starts(tmp_path):
    script = "import django; django.setup()"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_environment(tmp_path, DEMO_GATEWAY_ENABLED="flase"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DEMO_GATEWAY_ENABLED='flase': use 1 or 0" in result.stderr


def _settings_value(tmp_path, name: str, **extra: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with ``extra`` in the environment; print ``name``."""
    environment = _environment(tmp_path, **extra)
    if "DJANGO_SECRET_KEY_FILE" in extra:
        environment.pop("DJANGO_SECRET_KEY")
    return subprocess.run(
        [sys.executable, "-c", f"from django.conf import settings; print(settings.{name})"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_secret_key_can_come_from_a_mounted_file(tmp_path):
    secret_file = tmp_path / "mounted-secret"
    secret_file.write_text("a-key-from-a-docker-secret\n")
    result = _settings_value(tmp_path, "SECRET_KEY", DJANGO_SECRET_KEY_FILE=str(secret_file))
    assert result.stdout.strip() == "a-key-from-a-docker-secret", result.stderr
    assert not (tmp_path / "secret_key").exists()  # no generated key next to the mounted one


def test_a_missing_secret_file_names_the_variable(tmp_path):
    missing = tmp_path / "nowhere"
    result = _settings_value(tmp_path, "SECRET_KEY", DJANGO_SECRET_KEY_FILE=str(missing))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY_FILE=" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODEL_LIST_CACHE_SECONDS", "5m", "expected a whole number"),
        ("DJANGO_HSTS_SECONDS", "-5", "must be at least 0"),
        ("STREAM_COALESCE_SECONDS", "40ms", "expected a number"),
    ],
)
def test_a_mistyped_number_names_itself(tmp_path, variable, value, message):
    result = _settings_value(tmp_path, variable, **{variable: value})
    assert result.returncode != 0
    assert f"{variable}={value!r}: {message}" in result.stderr


# -- no files written at import time: a start-up step makes the data directory and the key ---------


def _without_secret_key(data_dir: Path, **extra: str) -> dict[str, str]:
    environment = _environment(data_dir, **extra)
    environment.pop("DJANGO_SECRET_KEY")
    return environment


def test_importing_the_settings_writes_nothing(tmp_path):
    data = tmp_path / "data"
    static = tmp_path / "static"
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DATABASES)"],
        cwd=ROOT,
        env=_environment(data, STATIC_ROOT=str(static)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert not data.exists()
    assert not static.exists()


def test_settings_without_a_kept_key_say_how_to_get_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env=_without_secret_key(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "manage.py" in result.stderr
    assert not (tmp_path / "data").exists()


def test_the_kept_secret_key_is_made_once_and_shared_by_every_process(tmp_path):
    data = tmp_path / "data"
    show_key = "from django.conf import settings; print(settings.SECRET_KEY)"

    def key_seen_by_a_new_process() -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", show_key],
            cwd=ROOT,
            env=_without_secret_key(data),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]  # after shell's "objects imported" line

    first, second = key_seen_by_a_new_process(), key_seen_by_a_new_process()
    assert len(first) >= 50
    assert first == second == (data / "secret_key").read_text().strip()
    assert stat.S_IMODE((data / "secret_key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700

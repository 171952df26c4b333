"""Switchboard settings: every knob comes from an environment variable with a sane default.

The defaults run the whole product on one machine with no services: SQLite, the in-memory
channel layer and the built-in demo gateway. See README.md for the production variables.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    return [item.strip() for item in value.split(",") if item.strip()] or default


DATA_DIR = Path(os.environ.get("SWITCHBOARD_DATA_DIR", BASE_DIR / "data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _persistent_secret_key() -> str:
    """A random key kept in DATA_DIR, so sessions and encrypted API keys survive restarts."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _persistent_secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "chat.middleware.FirstRunMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat.context_processors.site",
            ],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]
if not DEBUG:
    # Cache compiled templates in production; the partials loader wraps the cached loader.
    TEMPLATES[0]["OPTIONS"]["loaders"] = [
        (
            "template_partials.loader.Loader",
            [
                (
                    "django.template.loaders.cached.Loader",
                    [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                )
            ],
        )
    ]


def _database_from_url(url: str) -> dict:
    """``DATABASE_URL`` (e.g. ``postgres://user:pass@127.0.0.1:5432/switchboard``) → Django's
    database settings: persistent connections, checked before reuse; a test database named per
    process (``test_<name>_<pid>``) so parallel runs on one server do not collide."""
    import dj_database_url

    config = dict(
        dj_database_url.parse(
            url,
            conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
            conn_health_checks=True,
        )
    )
    if config["ENGINE"] != "django.db.backends.sqlite3":
        config["TEST"] = {"NAME": f"test_{config['NAME']}_{os.getpid()}"}
    return config


DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SQLITE_PATH", DATA_DIR / "db.sqlite3"),
        # Keep connections: every turn's database calls go through one thread, and reopening
        # SQLite (and re-running its pragmas) per call doubled time to first token under load.
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            # IMMEDIATE + WAL: concurrent writers wait for the lock instead of failing.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not shared-cache memory: async tests write from several threads at once;
        # one per process, so parallel runs on one machine do not share it.
        "TEST": {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")},
    }
}
if DATABASE_URL:
    DATABASES["default"] = _database_from_url(DATABASE_URL)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One process: the in-memory channel layer and cache. Several processes (REDIS_URL): both in
# Redis, so group messages reach every worker's sockets and login-throttling counts are shared.
# The prefix keeps installations (or test runs) sharing one Redis apart.
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
CHANNEL_LAYER_PREFIX = os.environ.get("CHANNEL_LAYER_PREFIX", "").strip() or "switchboard"
# While Redis is unreachable (a restart), a channel-layer send waits this long for it to come
# back before giving up (chat/channel_layer.py); receiving waits as long as it takes.
CHANNEL_LAYER_RETRY_SECONDS = env_float("CHANNEL_LAYER_RETRY_SECONDS", 10.0)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's layer, reconnecting and re-adding group memberships after a
            # Redis restart instead of failing every socket.
            "BACKEND": "chat.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {
                "retry_seconds": CHANNEL_LAYER_RETRY_SECONDS,
                # No socket timeout (redis-py 8 defaults to 5 s): it cuts the layer's blocking
                # 5 s BZPOPMIN on an idle channel, closing every quiet websocket; and with one,
                # redis-py wraps each write in asyncio.wait_for, which on Python 3.11 can
                # swallow a task's cancellation (a stopped runner's helper then never ends).
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": CHANNEL_LAYER_PREFIX,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_LAYER_PREFIX,
        }
    }
else:
    # Channels' in-memory layer without its per-message scan of every queue (chat/channel_layer.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "chat.channel_layer.LocalChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns at every start otherwise
# Serve straight from static/ unless the deployment ran collectstatic and turned this off.
WHITENOISE_USE_FINDERS = env_bool("STATIC_USE_FINDERS", True)

# Security: secure by default; a plain-HTTP intranet install sets DJANGO_SECURE=0 (README).
SECURE = env_bool("DJANGO_SECURE", not DEBUG)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
# A proxy's health check talks plain HTTP on loopback.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000 if SECURE else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", SECURE)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Upstream gateway. With no OPENAI_BASE_URL, the built-in demo gateway (mounted by project.asgi
# under /demo/) is the default provider, so the app is usable offline.
PORT = int(os.environ.get("PORT", "8000"))
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "").strip()
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "").strip()
DEMO_GATEWAY_ENABLED = env_bool("DEMO_GATEWAY_ENABLED", True)
DEMO_GATEWAY_URL = os.environ.get("DEMO_GATEWAY_URL", f"http://127.0.0.1:{PORT}/demo/v1")
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 5.0)
UPSTREAM_READ_TIMEOUT = env_float("UPSTREAM_READ_TIMEOUT", 60.0)
UPSTREAM_TOTAL_TIMEOUT = env_float("UPSTREAM_TOTAL_TIMEOUT", 600.0)
MODEL_LIST_CACHE_SECONDS = int(os.environ.get("MODEL_LIST_CACHE_SECONDS", "300"))

# Keys that encrypt provider API keys at rest; the first encrypts, all decrypt (rotation).
ENCRYPTION_KEYS = env_list("SWITCHBOARD_ENCRYPTION_KEYS", [])

# Streaming: how long deltas are coalesced before they go to the browser, and how often a
# running answer is checkpointed to the database.
STREAM_COALESCE_SECONDS = env_float("STREAM_COALESCE_SECONDS", 0.04)
STREAM_CHECKPOINT_SECONDS = env_float("STREAM_CHECKPOINT_SECONDS", 3.0)
# A running turn whose heartbeat (written at each checkpoint) is older than this is taken for
# dead (its worker crashed or restarted) and marked interrupted; every worker looks this often.
TURN_STALE_SECONDS = env_float("TURN_STALE_SECONDS", 20.0)
TURN_REAPER_SECONDS = env_float("TURN_REAPER_SECONDS", 5.0)
# On SIGTERM a worker lets its running answers finish for this long, then stores them as
# interrupted (chat/shutdown.py). systemd's TimeoutStopSec must be longer.
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 20.0)
MAX_MESSAGE_CHARS = int(os.environ.get("MAX_MESSAGE_CHARS", "32000"))
# A thread page shows this many of the newest turns; "Show earlier messages" loads more.
HISTORY_PAGE_TURNS = max(1, int(os.environ.get("HISTORY_PAGE_TURNS", "40")))
# Upstream requests one turn may make while the model keeps calling tools.
TOOL_MAX_STEPS = int(os.environ.get("TOOL_MAX_STEPS", "8"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}
DEMO_CHUNK_DELAY = env_float("DEMO_CHUNK_DELAY_MS", 20.0) / 1000

# Usage limits (the admin panel): messages a minute per user (0: no limit; a user's own quota
# overrides it), and login throttling: failed logins allowed per username and per client IP
# within the window before further tries are refused. Behind a reverse proxy, name the header
# that carries the client's address (its last entry is used), e.g. X-Real-IP.
RATE_LIMIT_PER_MINUTE = int(os.environ.get("RATE_LIMIT_PER_MINUTE", "20"))
LOGIN_FAILURES_PER_USERNAME = int(os.environ.get("LOGIN_FAILURES_PER_USERNAME", "5"))
LOGIN_FAILURES_PER_IP = int(os.environ.get("LOGIN_FAILURES_PER_IP", "20"))
LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", "900"))
LOGIN_CLIENT_IP_HEADER = os.environ.get("LOGIN_CLIENT_IP_HEADER", "").strip()
# Shown before estimated costs (model prices are entered in this currency).
COST_CURRENCY = os.environ.get("COST_CURRENCY", "$")

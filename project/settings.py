"""Switchboard settings: every knob comes from an environment variable with a sane default.

The defaults run the whole product on one machine with no services: SQLite, the in-memory
channel layer and the built-in demo gateway. See README.md for the production variables.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from project import private_files, startup_files
from project.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
)

BASE_DIR = startup_files.BASE_DIR


# The data directory holds the database, the secret key and uploads: only this user may read
# it (0700, files 0600, whatever the umask); chat.checks warns when an operator loosened that.
# Nothing is written here: project/startup_files.py creates these files when a process starts.
DATA_DIR = startup_files.data_dir()
MEDIA_ROOT = DATA_DIR / "uploads"
FILE_UPLOAD_PERMISSIONS = private_files.FILE_MODE
FILE_UPLOAD_DIRECTORY_PERMISSIONS = private_files.DIR_MODE

DEBUG = env_bool("DJANGO_DEBUG", False)
# The DEBUG error page masks passwords in every URL-valued setting (DATABASE_URL, REDIS_URL, …).
DEFAULT_EXCEPTION_REPORTER_FILTER = "chat.error_reports.CredentialsCleansingFilter"
# Random and kept in DATA_DIR unless set, so sessions and encrypted API keys survive restarts.
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or startup_files.read_secret_key(DATA_DIR)
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
    "django.contrib.humanize",  # naturaltime: the time under each message
    "channels",
    "csp",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chat.csp.SiteCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the language cookie (the user menu's switch), else the browser's
    # Accept-Language, else LANGUAGE_CODE. After sessions, before anything that renders text.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "chat.signin.header.TrustedHeaderMiddleware",  # a no-op unless TRUSTED_USER_HEADER is set
    "chat.log_context.RequestContextMiddleware",  # request and user ids for log lines
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
                "chat.context_processors.announcements",
                "chat.context_processors.budget",
                "chat.signin.views.login_options",
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


def _sqlite_database(name: str | Path) -> dict:
    """SQLite, however it is configured (``DATABASE_URL=sqlite:///…`` or the default file)."""
    # startup_files creates the file (mode 0600) before anything opens it.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
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


def _database_from_url(url: str) -> dict:
    """``DATABASE_URL`` (e.g. ``postgres://user:pass@127.0.0.1:5432/switchboard``) → Django's
    database settings: persistent connections, checked before reuse; a test database named per
    process (``test_<name>_<pid>``) so parallel runs on one server do not collide. A SQLite URL
    gets the same settings as the default SQLite file."""
    import dj_database_url

    config = dict(
        dj_database_url.parse(
            url,
            conn_max_age=env_int("CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return _sqlite_database(config["NAME"])
    config["TEST"] = {"NAME": f"test_{config['NAME']}_{os.getpid()}"}
    return config


DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {
    "default": _database_from_url(DATABASE_URL)
    if DATABASE_URL
    else _sqlite_database(env_str("SQLITE_PATH") or DATA_DIR / "db.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One process: the in-memory channel layer and cache. Several processes (REDIS_URL): both in
# Redis, so group messages reach every worker's sockets and login-throttling counts are shared.
# The prefix keeps installations (or test runs) sharing one Redis apart.
REDIS_URL = env_str("REDIS_URL")
CHANNEL_LAYER_PREFIX = env_str("CHANNEL_LAYER_PREFIX", "switchboard")
# While Redis is unreachable (a restart), a channel-layer send waits this long for it to come
# back before giving up (chat/channel_layer.py); receiving waits as long as it takes.
CHANNEL_LAYER_RETRY_SECONDS = env_float("CHANNEL_LAYER_RETRY_SECONDS", 10.0)
# Messages waiting for one Redis channel list; all sockets of a worker share one (see below).
CHANNEL_LAYER_CAPACITY = max(100, env_int("CHANNEL_LAYER_CAPACITY", 100_000))
# Redis connections one worker's channel layer may hold at once. redis-py 8 limits a pool to 100
# and then raises "Too many connections": with 200 answers streaming on a worker, their
# publishes, mirror writes and the sockets' receives took more, and every failed call waited
# and retried as if Redis were down (bench #16: 1.3 ms of CPU per chunk, streams stalling).
REDIS_MAX_CONNECTIONS = max(100, env_int("REDIS_MAX_CONNECTIONS", 2_000))


def redis_hosts(url: str) -> list[dict]:
    """channels_redis's ``hosts`` for one Redis server."""
    # No socket timeout (redis-py 8 defaults to 5 s): it cuts the layer's blocking 5 s BZPOPMIN
    # on an idle channel, closing every quiet websocket; and with one, redis-py wraps each write
    # in asyncio.wait_for, which on Python 3.11 can swallow a task's cancellation (a stopped
    # runner's helper then never ends).
    return [{"address": url, "socket_timeout": None, "max_connections": REDIS_MAX_CONNECTIONS}]


if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's layer, reconnecting and re-adding group memberships after a
            # Redis restart instead of failing every socket.
            "BACKEND": "chat.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {
                "retry_seconds": CHANNEL_LAYER_RETRY_SECONDS,
                "hosts": redis_hosts(REDIS_URL),
                "prefix": CHANNEL_LAYER_PREFIX,
                # channels_redis keeps what waits for all of a worker's sockets in ONE Redis list
                # (the process's "specific.…!" channel, one entry per group message), and its
                # default capacity of 100 applies to that list: with a few dozen answers
                # streaming, a worker a moment behind had group messages dropped silently, a
                # turn's end included (its pages stayed "in progress"; bench/workers.py lost 10
                # of 40). Messages still expire after 60 s.
                "capacity": CHANNEL_LAYER_CAPACITY,
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
# The first visitor of an empty install creates the administrator at /setup/. 0: that page is
# off (create it with `manage.py createsuperuser`); `check --deploy` warns while it is open.
FIRST_RUN_SETUP = env_bool("FIRST_RUN_SETUP", True)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

# English unless the browser or the user's choice says otherwise (README "Languages"). The
# catalogs live in locale/ (compiled by `make messages`); Django's own (admin, login forms) ship
# with Django.
LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["project.formats"]  # dates and numbers: Django's formats, a few changed
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # the switch is remembered for a year
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True  # only the server reads it
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
# Serve straight from static/ unless the deployment ran collectstatic and turned this off.
WHITENOISE_USE_FINDERS = env_bool("STATIC_USE_FINDERS", True)
# Hashed names (app.3f2a….js, cached for good: an upgrade never serves yesterday's file) and
# gzip + brotli copies made once by collectstatic, which `make run`, the deployment steps and
# the test session run (a page names only files listed in staticfiles/staticfiles.json).
# Security: secure by default; a plain-HTTP intranet install sets DJANGO_SECURE=0 (README).
SECURE = env_bool("DJANGO_SECURE", not DEBUG)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
LANGUAGE_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
# A proxy's health check talks plain HTTP on loopback.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", SECURE)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response: nothing inline, nothing from another
# origin. chat.csp adds the websocket origin and the image hosts staff allowed (site settings).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Upstream gateway. With no OPENAI_BASE_URL, the built-in demo gateway (mounted by project.asgi
# under /demo/) is the default provider, so the app is usable offline.
PORT = env_int("PORT", 8000)
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
# On by default only when no real gateway is configured; served behind the host checks.
DEMO_GATEWAY_ENABLED = env_bool("DEMO_GATEWAY_ENABLED", not OPENAI_BASE_URL)
DEMO_GATEWAY_URL = env_str("DEMO_GATEWAY_URL", f"http://127.0.0.1:{PORT}/demo/v1")
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 5.0)
UPSTREAM_READ_TIMEOUT = env_float("UPSTREAM_READ_TIMEOUT", 60.0)
UPSTREAM_TOTAL_TIMEOUT = env_float("UPSTREAM_TOTAL_TIMEOUT", 600.0)
MODEL_LIST_CACHE_SECONDS = env_int("MODEL_LIST_CACHE_SECONDS", 300)

# Keys that encrypt provider API keys at rest; the first encrypts, all decrypt (rotation).
ENCRYPTION_KEYS = env_list("SWITCHBOARD_ENCRYPTION_KEYS", [])

# Streaming: how long deltas are coalesced before they go to the browser, and how often a
# running answer is checkpointed to the database.
STREAM_COALESCE_SECONDS = env_float("STREAM_COALESCE_SECONDS", 0.04)
# How often a busy event loop hands the GIL to the database thread (chat/gil_switch.py).
GIL_SWITCH_INTERVAL_MS = env_float("GIL_SWITCH_INTERVAL_MS", 1.0)
# The event loop waits for a new turn's planning hop up to this long (chat.services.turns.
# first_hop); 0: it shares the GIL with the database thread meanwhile.
TURN_START_PRIORITY_MS = env_float("TURN_START_PRIORITY_MS", 15.0)
STREAM_CHECKPOINT_SECONDS = env_float("STREAM_CHECKPOINT_SECONDS", 3.0)
# A running turn whose heartbeat (written at each checkpoint) is older than this is taken for
# dead (its worker crashed or restarted) and marked interrupted; every worker looks this often.
TURN_STALE_SECONDS = env_float("TURN_STALE_SECONDS", 20.0)
TURN_REAPER_SECONDS = env_float("TURN_REAPER_SECONDS", 5.0)
# How long a runner keeps trying to store the end of its turn while the database is unreachable
# (with backoff up to 2 s between attempts); after that the turn is closed from its last
# checkpoint once the database is back.
TURN_FINISH_RETRY_SECONDS = env_float("TURN_FINISH_RETRY_SECONDS", 60.0)
# On SIGTERM a worker lets its running answers finish for this long, then stores them as
# interrupted (chat/shutdown.py). systemd's TimeoutStopSec must be longer.
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 20.0)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 32000)
# Turns streaming at once in one process (one core); the next ones wait in line, showing their
# place, and a message is refused while MAX_QUEUED_TURNS wait (chat/services/turns/admission.py).
# 200: the last full bench carried 100 streams of 50 chunks/s within its latency goal and used
# about one core at ~150 (147 µs per chunk at 500 streams); real models stream slower. 0: no cap.
MAX_RUNNING_TURNS = max(0, env_int("MAX_RUNNING_TURNS", 200))
MAX_QUEUED_TURNS = max(0, env_int("MAX_QUEUED_TURNS", 1000))
# After a chat's first answer, a small model writes its title (see chat/services/titles.py).
AUTO_TITLES = env_bool("AUTO_TITLES", True)
# A thread page shows this many of the newest turns; "Show earlier messages" loads more. 10:
# Chromium builds each shown turn in the load's one task (about 3 ms a rich turn on the bench
# machine): 40 made a 120-350 ms long task, 10 keeps it near the 50 ms goal (bench #8).
HISTORY_PAGE_TURNS = max(1, env_int("HISTORY_PAGE_TURNS", 10))
# Upstream requests one turn may make while the model keeps calling tools.
TOOL_MAX_STEPS = env_int("TOOL_MAX_STEPS", 8)
# Largest chat import accepted (a ChatGPT export, its zip, or Switchboard's JSON), in bytes;
# for a zip, also the size of the conversations.json inside.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024, minimum=1)

# Files attached to messages (chat/services/attachments): per file, per message, per user a day
# (a user's quota overrides the last), and images: larger ones are refused (decompression
# bombs), and downscaled to this side before they are sent upstream.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1)
MAX_FILES_PER_MESSAGE = env_int("MAX_FILES_PER_MESSAGE", 10, minimum=1)
UPLOAD_BYTES_PER_DAY = env_int("UPLOAD_BYTES_PER_DAY", 500 * 1024 * 1024, minimum=0)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
UPSTREAM_IMAGE_MAX_SIDE = env_int("UPSTREAM_IMAGE_MAX_SIDE", 2048, minimum=64)
# Where attachments are stored: "local" (MEDIA_ROOT, files 0600, never served directly) or
# "s3" (any S3-compatible store through django-storages; several workers share it).
STORAGE_BACKEND = env_str("STORAGE_BACKEND", "local").lower()
if STORAGE_BACKEND == "local":
    _DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif STORAGE_BACKEND == "s3":
    if not env_str("S3_BUCKET"):
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs S3_BUCKET.")
    _DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("S3_BUCKET"),
            "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
            "access_key": env_str("S3_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("S3_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("S3_REGION") or None,
            # Objects are private and never linked to: every read goes through our views.
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    raise ImproperlyConfigured(f"STORAGE_BACKEND={STORAGE_BACKEND!r}: use local or s3.")
STORAGES = {
    "default": _DEFAULT_STORAGE,
    # Hashed names and gzip + brotli copies (`make static`): an upgrade never serves old files;
    # the app's own scripts minified first (project/static_storage.py).
    "staticfiles": {"BACKEND": "project.static_storage.MinifiedStaticFilesStorage"},
}

# LOG_FORMAT=json: one JSON object per line, with request / turn / user ids (chat/log_context.py).
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "chat.log_context.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"}
        | ({"formatter": "json"} if LOG_FORMAT == "json" else {})
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}
DEMO_CHUNK_DELAY = env_float("DEMO_CHUNK_DELAY_MS", 20.0) / 1000

# Usage limits (the admin panel): messages a minute per user (0: no limit; a user's own quota
# overrides it), and login throttling: failed logins allowed per username and per client IP
# within the window before further tries are refused. Behind a reverse proxy, name the header
# that carries the client's address (its last entry is used), e.g. X-Real-IP.
RATE_LIMIT_PER_MINUTE = env_int("RATE_LIMIT_PER_MINUTE", 20)
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 5)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 20)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
LOGIN_CLIENT_IP_HEADER = env_str("LOGIN_CLIENT_IP_HEADER")
# Shown before estimated costs (model prices are entered in this currency).
COST_CURRENCY = env_str("COST_CURRENCY", "$")
# Team budgets (README "Access and money"): the share of a budget at which its team is warned
# (banner, dashboard, webhook), and an optional Slack/Mattermost/Teams-style incoming webhook
# called once per team, budget, threshold and month.
BUDGET_WARNING_PERCENT = env_int("BUDGET_WARNING_PERCENT", 80, minimum=1)
BUDGET_WEBHOOK_URL = env_str("BUDGET_WEBHOOK_URL")
BUDGET_WEBHOOK_TIMEOUT = env_float("BUDGET_WEBHOOK_TIMEOUT", 10.0)

# /metrics (chat/metrics.py): a bearer token and/or client addresses or networks allowed to
# read it; with neither, it answers 403. Several workers: also PROMETHEUS_MULTIPROC_DIR.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS: {_network!r} is not an IP address or network "
            "(e.g. 10.0.0.5 or 10.0.0.0/24)."
        ) from None


# -- sign-in for an organisation (README "Sign-in"): OpenID Connect, LDAP, a trusted proxy header.


def _group_team_map() -> dict[str, str]:
    from django.core.exceptions import ImproperlyConfigured

    from chat.signin.config import parse_group_team_map

    try:
        return parse_group_team_map(env_str("GROUP_TEAM_MAP", ""))
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from error


LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)
OIDC_ISSUER = env_str("OIDC_ISSUER")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = env_secret("OIDC_CLIENT_SECRET")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_BUTTON_LABEL = env_str("OIDC_BUTTON_LABEL", "Sign in with your organisation")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_ADMIN_GROUPS = env_list("OIDC_ADMIN_GROUPS", [])
OIDC_ALLOWED_GROUPS = env_list("OIDC_ALLOWED_GROUPS", [])

LDAP_SERVER_URI = env_str("LDAP_SERVER_URI")
LDAP_ADMIN_GROUPS = env_list("LDAP_ADMIN_GROUPS", [])

TRUSTED_USER_HEADER = env_str("TRUSTED_USER_HEADER")
TRUSTED_GROUPS_HEADER = env_str("TRUSTED_GROUPS_HEADER")
TRUSTED_PROXY_IPS = env_list("TRUSTED_PROXY_IPS", [])
TRUSTED_ADMIN_GROUPS = env_list("TRUSTED_ADMIN_GROUPS", [])

GROUP_TEAM_MAP = _group_team_map()
GROUP_TEAMS_CREATE = env_bool("GROUP_TEAMS_CREATE", True)

if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET(_FILE)")
if TRUSTED_USER_HEADER and not TRUSTED_PROXY_IPS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("TRUSTED_USER_HEADER needs TRUSTED_PROXY_IPS (the proxy's address)")

AUTHENTICATION_BACKENDS = [
    "chat.signin.backends.AccountBackend",
    "chat.signin.header.TrustedHeaderBackend",
]
if LDAP_SERVER_URI:
    from chat.signin.ldap_config import auth_ldap_settings

    globals().update(
        auth_ldap_settings(
            server_uri=LDAP_SERVER_URI,
            bind_dn=env_str("LDAP_BIND_DN"),
            bind_password=env_secret("LDAP_BIND_PASSWORD"),
            user_search_base=env_str("LDAP_USER_SEARCH_BASE"),
            user_filter=env_str("LDAP_USER_FILTER", "(uid=%(user)s)"),
            group_search_base=env_str("LDAP_GROUP_SEARCH_BASE"),
            group_type=env_str("LDAP_GROUP_TYPE", "groupOfNames"),
            start_tls=env_bool("LDAP_START_TLS", False),
        )
    )
    # The directory first: a local password never shadows the directory's for its people.
    AUTHENTICATION_BACKENDS.insert(0, "chat.signin.ldap.SwitchboardLDAPBackend")

# MCP servers (chat/services/mcp): what a tool result may weigh, and whether the audit keeps
# the arguments of each call (off: they may hold what a user typed).
MCP_RESULT_MAX_CHARS = env_int("MCP_RESULT_MAX_CHARS", 20_000, minimum=1000)
MCP_AUDIT_ARGUMENTS = env_bool("MCP_AUDIT_ARGUMENTS", False)

# -- the OpenAI-compatible API (/api/v1, README "Use it from scripts") --------------------------
# Wrong keys allowed per client IP within the window, before that IP is refused (429).
API_KEY_FAILURES_PER_IP = env_int("API_KEY_FAILURES_PER_IP", 20)
API_KEY_FAILURE_WINDOW_SECONDS = env_int("API_KEY_FAILURE_WINDOW_SECONDS", 300)
# Browser origins allowed to call the API (CORS), e.g. https://notebook.example.com; empty: none.
API_CORS_ORIGINS = env_list("API_CORS_ORIGINS", [])
# A fallback waits for the upstream's Retry-After, at most this long.
API_RETRY_AFTER_CAP_SECONDS = env_float("API_RETRY_AFTER_CAP_SECONDS", 5.0)
# A running stream re-checks its key (revoked, expired, API turned off) this often.
API_KEY_RECHECK_SECONDS = env_float("API_KEY_RECHECK_SECONDS", 1.0)

"""ASGI entry point: Django for HTTP, the thread websocket, and the built-in demo gateway."""

import logging
import os

from django.core.asgi import get_asgi_application

from project.startup_files import prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
prepare()  # the data directory, secret key and SQLite file, before Django opens them
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.db import DatabaseError  # noqa: E402

from chat import (  # noqa: E402
    daphne_checks,
    daphne_uploads,
    gc_tuning,
    gil_switch,
    shutdown,
    socket_loop,
)
from chat.api.asgi import with_api  # noqa: E402
from chat.demo_mount import with_demo_gateway  # noqa: E402
from chat.routing import websocket_application  # noqa: E402
from chat.signin.header import TrustedHeaderWebsocketMiddleware  # noqa: E402
from chat.startup import on_server_start  # noqa: E402

log = logging.getLogger(__name__)

application = ProtocolTypeRouter(
    {
        # /demo/… is the built-in demo gateway (when enabled, behind the host checks).
        # /api/… (the OpenAI-compatible API) skips the site's sync middleware (chat/api/asgi.py).
        "http": with_demo_gateway(with_api(django_application)),
        # A trusted proxy's sign-in header (TRUSTED_USER_HEADER) names the socket's user.
        "websocket": TrustedHeaderWebsocketMiddleware(websocket_application),
    }
)

try:
    on_server_start()
except DatabaseError:
    log.warning("database not ready (run `manage.py migrate`); skipped start-up housekeeping")
# Under Daphne: on SIGTERM, finish or store the running answers before exiting.
shutdown.install()
# Under Daphne: an upload's body is not parsed on the event loop (chat/daphne_uploads.py).
daphne_uploads.install()
# Under Daphne: what an idle websocket keeps is small (chat/socket_loop.py), and its periodic
# checks visit only the connections that need them (chat/daphne_checks.py).
socket_loop.install()
daphne_checks.install()
# Start-up objects out of the collector's sight, fewer young collections (chat/gc_tuning.py).
gc_tuning.tune_for_serving()
# The database thread gets the GIL back from a busy loop sooner (chat/gil_switch.py).
gil_switch.tune_for_serving()

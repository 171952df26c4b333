"""ASGI entry point: Django for HTTP, the thread websocket, and the built-in demo gateway."""

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402
from django.db import DatabaseError  # noqa: E402

from chat import shutdown  # noqa: E402
from chat.routing import websocket_application  # noqa: E402
from chat.startup import demo_gateway_key, on_server_start  # noqa: E402
from chat.upstream.demo import make_app  # noqa: E402

log = logging.getLogger(__name__)

http_application = django_application
if settings.DEMO_GATEWAY_ENABLED:
    demo_application = make_app(api_key=demo_gateway_key(), chunk_delay=settings.DEMO_CHUNK_DELAY)

    async def http_application(scope, receive, send):  # type: ignore[no-redef]
        """/demo/… is the built-in demo gateway; everything else is Django."""
        if scope["path"].startswith("/demo/"):
            return await demo_application(scope, receive, send)
        return await django_application(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": websocket_application,
    }
)

try:
    on_server_start()
except DatabaseError:
    log.warning("database not ready (run `manage.py migrate`); skipped start-up housekeeping")
# Under Daphne: on SIGTERM, finish or store the running answers before exiting.
shutdown.install()

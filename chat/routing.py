from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat.consumers import ThreadConsumer

websocket_urlpatterns = [path("ws/threads/<id:thread_id>/", ThreadConsumer.as_asgi())]

# Origin checked against ALLOWED_HOSTS (no cross-site websocket hijacking), then the session user.
websocket_application = AllowedHostsOriginValidator(
    AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
)

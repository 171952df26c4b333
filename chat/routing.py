from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

import chat.request_ids  # noqa: F401 (registers the <id:…> converter)
from chat.consumers import ThreadConsumer
from chat.site_origin import SameOriginValidator

websocket_urlpatterns = [path("ws/threads/<id:thread_id>/", ThreadConsumer.as_asgi())]

# Only this site's own pages (scheme, host and port) or CSRF_TRUSTED_ORIGINS may open a socket
# (no cross-site websocket hijacking); then the session user.
websocket_application = SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.stacks.channels_app.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from tests.stacks.channels_app import consumers  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter(
                    [
                        path("ws/mission-updates/", consumers.Missions.as_asgi()),
                        path("ws/private/", consumers.Private.as_asgi()),
                    ]
                )
            )
        ),
    }
)

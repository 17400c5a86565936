"""Tornado routes of the token API, the WebSocket feed and its example page.

``panel serve ... --plugins zvpanel.web.routes`` imports this module and adds
:data:`ROUTES` to the server's own patterns (panel/command/serve.py reads
``plugin_module.ROUTES``), so the feed runs on the dashboards' port. The handlers find
the process-wide :class:`zvpanel.app.App` through :func:`zvpanel.app.get_app` on their
first request (the ``--setup`` script has started it by then).

Tests and other servers build their own with :func:`build_routes`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler

from .auth import LOGIN_THROTTLE, LoginThrottle
from .feed import MessageCache
from .headers import add_security_headers
from .jpeg import FrameEncoder, shared_encoder
from .mjpeg import mjpeg_route
from .token_handler import TokenHandler
from .video import video_route
from .ws_handlers import (
    DetectionsHandler,
    EventsHandler,
    FeedRegistry,
    LiveHandler,
    MultiDetectionsHandler,
)

__all__ = ["ROUTES", "STATIC_DIR", "build_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


class FeedPageHandler(StaticFileHandler):
    """The feed's example page (it takes a password) with the headers of every page."""

    def set_default_headers(self) -> None:
        add_security_headers(self)


def _process_app() -> Any:
    from ..app import get_app  # imported on first request: importing it loads the model stack

    return get_app()


def build_routes(
    app_provider: Callable[[], Any] = _process_app,
    *,
    encoder_provider: Callable[[], FrameEncoder] = shared_encoder,
    throttle: LoginThrottle | None = None,
    registry: FeedRegistry | None = None,
) -> list[tuple[str, type, dict[str, Any]]]:
    """The route tuples; ``app_provider()`` returns an object with ``.db``, ``.hub``, ``.settings``."""
    feed = {
        "app_provider": app_provider,
        "encoder_provider": encoder_provider,
        "messages": MessageCache(),
        "registry": registry if registry is not None else FeedRegistry(),
    }
    # The login page uses LOGIN_THROTTLE too: one budget of guesses per server process.
    token = {"app_provider": app_provider, "throttle": throttle or LOGIN_THROTTLE}
    return [
        (r"/api/token", TokenHandler, token),
        (r"/ws/detections/([^/]+)", DetectionsHandler, feed),
        (r"/ws/detections", MultiDetectionsHandler, feed),
        (r"/ws/live/([^/]+)", LiveHandler, feed),
        (r"/ws/events", EventsHandler, feed),
        # The example page: /feed/ serves live.html.
        (
            r"/feed/(.*)",
            FeedPageHandler,
            {"path": str(STATIC_DIR), "default_filename": "live.html"},
        ),
        # The dashboards' live video (zvpanel.ui.streaming_image reads it).
        video_route(app_provider),
        # The annotated video as MJPEG, for an <img> on another application's page.
        mjpeg_route(app_provider),
    ]


ROUTES = build_routes()

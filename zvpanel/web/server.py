"""A stand-alone Tornado server for the feed routes, on its own thread and IOLoop.

``panel serve --plugins zvpanel.web.routes`` is the production way to run the feed; this
serves the same routes without Panel, for tests, benchmarks and scripts.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from ..errors import ZvpanelError

__all__ = ["FeedServer", "START_TIMEOUT_S"]

#: How long :meth:`FeedServer.start` waits for the server thread to listen.
START_TIMEOUT_S = 10.0
#: How long :meth:`FeedServer.stop` waits for the server thread to end.
STOP_TIMEOUT_S = 10.0


class FeedServer:
    """Serves ``routes`` on ``host:port`` (port 0: a free one) from a background thread."""

    def __init__(self, routes: list[tuple], host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes = routes
        self.host = host
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zvpanel-feed-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> FeedServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error is not None:
            raise ZvpanelError(
                f"feed server on {self.host}:{self.port} did not start: {self._error}"
            )
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start(); the thread ends
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        sockets = bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        server = HTTPServer(Application(self.routes))
        server.add_sockets(sockets)
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._ready.set()
        await self._stopped.wait()
        server.stop()

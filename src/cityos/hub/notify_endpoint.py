"""A local HTTP endpoint that hands NGSI-LD notifications to Python callables.

The HTTP hub client (:mod:`cityos.hub.remote`) subscribes with a URL of this endpoint, so a
service running as its own process gets the same ``receiver(notification)`` calls as one
inside the hub. Each receiver has an unguessable path (``/notify/<uuid hex>``); anything
else is a 404. A receiver that raises answers 500, so the hub records a failed delivery and
retries, as it does when an in-process receiver raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("cityos.hub.remote")

PREFIX = "/notify/"
MAX_NOTIFICATION_BYTES = 16 * 1024 * 1024


class NotifyEndpoint:
    """A ThreadingHTTPServer on ``host:port`` (0: a free port) in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receivers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._server = ThreadingHTTPServer((host, port), _handler_for(self.receivers))
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cityos-notify-endpoint", daemon=True
        )
        self._thread.start()

    def url(self, name: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PREFIX}{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(
    receivers: dict[str, Callable[[dict[str, Any]], Any]],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            name = self.path.split("?", 1)[0].removeprefix(PREFIX)
            receiver = receivers.get(name) if self.path.startswith(PREFIX) else None
            length = int(self.headers.get("Content-Length") or 0)
            if receiver is None or length > MAX_NOTIFICATION_BYTES:
                self._answer(404 if receiver is None else 413)
                return
            try:
                notification = json.loads(self.rfile.read(length))
            except ValueError:
                self._answer(400)
                return
            try:
                result = receiver(notification)
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
            except Exception:  # the hub records the failure and tries again
                log.exception("notification receiver %s failed", name)
                self._answer(500)
                return
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("notify endpoint: " + format, *args)

    return Handler

"""Serving while the day runs: uvicorn in a background thread, on the same hub the day
writes to, so the dashboard at ``/`` shows every phase as it happens; after the day it keeps
serving until Ctrl-C."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class ServerError(RuntimeError):
    """The server did not start (its address, most likely); the message is one line."""


class BackgroundServer:
    """``app`` served on ``host:port`` from a thread of this process."""

    def __init__(self, app: Any, host: str, port: int, **options: Any) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, **options)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self._serve, name="cityos-demo-server", daemon=True)
        self.failure: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # uvicorn exits the thread when it cannot bind
            self.failure = exc

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait until it answers (its lifespan ran: tasks, delivery, MQTT)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"the dashboard could not be served on {self.url}")
            time.sleep(0.05)

    def wait(self) -> None:
        """Serve until Ctrl-C (or the server stops), then stop cleanly."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(15)

"""Live updates for the dashboard: hub subscriptions fanned out to the open pages.

One in-process subscription per (tenant, entity type) that some open page watches — not one
per browser — made when the first page asks and removed when the last one leaves, so a
hundred operators on the traffic page cost the hub one subscription. What reaches the
browser is only "type T changed" (never ids or values): the page then asks for its panels
again, through the door, under the viewer's own grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from cityos.hub.client import HubClient

log = logging.getLogger("cityos.web.dashboard")

QUEUE_SIZE = 64


class LiveFeed:
    """(tenant, type) -> the queues of the pages that watch it."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.listeners: dict[tuple[str, str], set[asyncio.Queue[str]]] = {}
        self.subscriptions: dict[tuple[str, str], str] = {}

    def _receiver(self, key: tuple[str, str]) -> Any:
        def receive(notification: dict[str, Any]) -> None:
            for queue in list(self.listeners.get(key, ())):
                with contextlib.suppress(asyncio.QueueFull):  # a slow page misses a beat
                    queue.put_nowait(key[1])

        return receive

    @contextlib.asynccontextmanager
    async def listen(self, tenant: str, types: list[str]) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of changed type names, for as long as the page is open."""
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        keys = [(tenant, t) for t in types]
        try:
            for key in keys:
                self.listeners.setdefault(key, set()).add(queue)
                if key not in self.subscriptions:
                    client = self.client.for_tenant(tenant)
                    self.subscriptions[key] = await asyncio.to_thread(
                        client.subscribe, self._receiver(key), entity_type=key[1], fmt="keyValues"
                    )
            yield queue
        finally:
            for key in keys:
                listeners = self.listeners.get(key, set())
                listeners.discard(queue)
                if not listeners:
                    self.listeners.pop(key, None)
                    await self._drop(key)

    async def _drop(self, key: tuple[str, str]) -> None:
        sub = self.subscriptions.pop(key, None)
        if sub is None:
            return
        try:
            await asyncio.to_thread(self.client.for_tenant(key[0]).unsubscribe, sub)
        except Exception:  # the hub is closing, or the subscription went already
            log.debug("dashboard subscription %s not removed", sub, exc_info=True)

    async def close(self) -> None:
        for key in list(self.subscriptions):
            await self._drop(key)
        self.listeners.clear()

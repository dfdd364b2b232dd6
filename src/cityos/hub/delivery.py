"""Delivers the outbox: notifications to webhooks, at least once, in order per subscription.

The worker polls the outbox (it is written in the same transaction as each change, so a
crash between the change and the delivery loses nothing), posts each subscription's
notifications in order, and retries a failure with exponential backoff; after
``max_attempts`` it gives up and marks the subscription ``failed``. Subscriptions are
served concurrently, each with its own timeout, so a webhook that hangs slows only itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from cityos.hub.model import now_iso
from cityos.hub.store.base import Notification, Store

log = logging.getLogger("cityos.delivery")


def _later(seconds: float) -> str:
    t = datetime.now(UTC) + timedelta(seconds=seconds)
    return t.isoformat(timespec="microseconds")[:-6] + "Z"


class Deliverer:
    def __init__(
        self,
        store: Store,
        *,
        timeout_s: float = 5.0,
        backoff_s: float = 1.0,
        max_attempts: int = 6,
        poll_s: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
        local: dict[str, Callable[[dict[str, Any]], Any]] | None = None,
    ) -> None:
        self.store = store
        # in-process receivers (``local://name`` endpoints, see cityos.hub.client)
        self.local = local if local is not None else {}
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def run_forever(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except Exception:  # the worker must outlive any one bad notification
                log.exception("notification delivery failed; retrying")
                sent = 0
            if not sent:
                await asyncio.sleep(self.poll_s)

    async def run_once(self) -> int:
        """Deliver what is due now; how many notifications were attempted."""
        if not await asyncio.to_thread(self.store.delivery_lease):
            return 0  # another worker delivers; we take over if it goes away
        due = await asyncio.to_thread(self.store.due_notifications, now_iso(), 500)
        by_sub: dict[tuple[str, str], list[Notification]] = defaultdict(list)
        for n in due:
            by_sub[(n.tenant, n.subscription_id)].append(n)
        await asyncio.gather(*(self._deliver_in_order(k, v) for k, v in by_sub.items()))
        return len(due)

    async def _deliver_in_order(self, key: tuple[str, str], queue: list[Notification]) -> None:
        tenant, sub_id = key
        sub = await asyncio.to_thread(self.store.get_subscription, tenant, sub_id)
        if sub is None:
            return
        endpoint = sub["notification"]["endpoint"]
        headers = {"Content-Type": endpoint.get("accept") or "application/json"}
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        for info in endpoint.get("receiverInfo") or []:
            if isinstance(info, dict) and "key" in info and "value" in info:
                headers[str(info["key"])] = str(info["value"])
        for n in queue:
            ok, error = await self._post(endpoint["uri"], n.payload, headers)
            attempts = n.attempts + 1
            if ok:
                await asyncio.to_thread(
                    self.store.finish_notification, n.id, delivered=True, next_at=None
                )
            else:
                give_up = attempts >= self.max_attempts
                next_at = None if give_up else _later(self.backoff_s * 2 ** (attempts - 1))
                await asyncio.to_thread(
                    self.store.finish_notification, n.id, delivered=False, next_at=next_at
                )
            await asyncio.to_thread(
                self._record,
                tenant,
                sub_id,
                ok,
                error,
                give_up=not ok and attempts >= self.max_attempts,
            )
            if not ok:
                return  # keep this subscription's order: the rest wait for the retry

    async def _post(
        self, uri: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> tuple[bool, str | None]:
        if uri.startswith("local://"):
            return await self._call_local(uri[len("local://") :], payload)
        if uri.startswith(("mqtt://", "mqtts://")):
            return await asyncio.to_thread(publish_mqtt, uri, payload, self.timeout_s)
        try:
            r = await self._client.post(uri, content=orjson.dumps(payload), headers=headers)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if 200 <= r.status_code < 300:
            return True, None
        return False, f"HTTP {r.status_code}"

    def _record(
        self, tenant: str, sub_id: str, ok: bool, error: str | None, *, give_up: bool
    ) -> None:
        sub = self.store.get_subscription(tenant, sub_id)
        if sub is None:
            return
        now = now_iso()
        sub["lastNotification"] = now
        if ok:
            sub["timesSent"] = sub.get("timesSent", 0) + 1
            sub["lastSuccess"] = now
            if sub.get("status") == "failed":
                sub["status"] = "active"
        else:
            sub["timesFailed"] = sub.get("timesFailed", 0) + 1
            sub["lastFailure"] = now
            sub["lastFailureReason"] = error
            if give_up:
                sub["status"] = "failed"
        self.store.put_subscription(tenant, sub)

    async def _call_local(self, name: str, payload: dict[str, Any]) -> tuple[bool, str | None]:
        receiver = self.local.get(name)
        if receiver is None:
            return False, f"no in-process receiver {name!r} in this process"
        try:
            result = receiver(payload)
            if asyncio.iscoroutine(result):
                await asyncio.wait_for(result, self.timeout_s)
        except Exception as exc:  # the receiver's failure is a failed delivery, retried
            return False, f"{type(exc).__name__}: {exc}"
        return True, None

    async def close(self) -> None:
        await self._client.aclose()


def publish_mqtt(uri: str, payload: dict[str, Any], timeout_s: float) -> tuple[bool, str | None]:
    """Publish one notification (QoS 1) to ``mqtt://[user:pass@]host[:port]/topic``."""
    import paho.mqtt.client as mqtt

    parts = urlsplit(uri)
    topic = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not topic:
        return False, f"MQTT endpoint {uri!r} needs a host and a topic"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    try:
        client.connect(
            parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883), keepalive=30
        )
        client.loop_start()
        info = client.publish(topic, orjson.dumps(payload), qos=1)
        info.wait_for_publish(timeout=timeout_s)
        ok = info.is_published()
        return (True, None) if ok else (False, "MQTT publish not acknowledged in time")
    except (OSError, ValueError, RuntimeError) as exc:
        return False, f"MQTT {type(exc).__name__}: {exc}"
    finally:
        client.loop_stop()
        client.disconnect()

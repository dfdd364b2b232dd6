"""Delivers the outbox: notifications to webhooks, at least once, in order per subscription.

Every worker process runs a deliverer. Each round it claims the subscriptions that have
something due and that no other live worker holds (``delivery_claims``, see
:mod:`cityos.hub.store.claims`), sends their notifications in order and gives the claims
back: one sender per subscription at a time keeps each change notified once and in order,
while different subscriptions go out from different workers. The outbox is written in the
same transaction as each change, so a crash between the change and the delivery loses
nothing; a worker that dies mid-send leaves claims that lapse after ``claim_s`` seconds.

A failure is retried with exponential backoff; after ``max_attempts`` the deliverer gives
up and marks the subscription ``failed``. Any exception while building or sending a
notification (an endpoint host that is not valid IDNA, a receiver header that cannot be
encoded, ...) is such a failure too, never a retry at full speed; the log says so once
when a subscription starts failing, once when it is given up and once when it recovers. Subscriptions are served concurrently, each with
its own timeout, so a webhook that hangs slows only itself. ``timeInterval`` subscriptions
are produced here too, by whichever worker claims them when they fall due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from cityos.hub.implicit_contexts import IMPLICIT_KEY, restore_implicit
from cityos.hub.ldcontext import CORE_CONTEXT_URL
from cityos.hub.model import now_iso
from cityos.hub.netguard import (
    DEFAULT_PORTS,
    AsyncGuardedTransport,
    DestinationError,
    pinned_address,
)
from cityos.hub.store.base import Notification, Store
from cityos.hub.subscriptions import SubscriptionIndex

log = logging.getLogger("cityos.delivery")


def _later(seconds: float) -> str:
    t = datetime.now(UTC) + timedelta(seconds=seconds)
    return t.isoformat(timespec="microseconds")[:-6] + "Z"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _request_parts(tenant: str, sub: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Where a subscription's notifications go, their headers, and what their bodies carry
    besides the data (the @context for JSON-LD)."""
    endpoint = sub["notification"]["endpoint"]
    media = endpoint.get("accept") or "application/json"
    headers = {"Content-Type": media}
    # the receiver reads the terms with the subscription's own @context (clause 5.3.2):
    # in the body for JSON-LD, as a Link header for plain JSON
    context = sub.get("jsonldContext") or sub.get("@context") or CORE_CONTEXT_URL
    extra: dict[str, Any] = {}
    if media == "application/ld+json":  # a list of one URL is that URL
        extra["@context"] = (
            context[0] if isinstance(context, list) and len(context) == 1 else context
        )
    elif media == "application/json":  # a compound @context: its implicit one names it all
        target = sub.get("jsonldContext") or sub.get(IMPLICIT_KEY) or _link_target(context)
        headers["Link"] = (
            f'<{target}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        )
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    for info in endpoint.get("receiverInfo") or []:
        if isinstance(info, dict) and "key" in info and "value" in info:
            headers[str(info["key"])] = str(info["value"])
    return str(endpoint["uri"]), headers, extra


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
        index: SubscriptionIndex | None = None,
        claim_s: float | None = None,
        allow_private: bool = False,
    ) -> None:
        self.store = store
        self.index = index  # builds timeInterval notifications; without it none are sent
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # a claim outlives the longest round: every send is bounded by timeout_s and a
        # subscription's queue is cut off once half the claim has been used
        self.claim_s = claim_s if claim_s is not None else max(10.0, 4 * timeout_s)
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._failing: set[tuple[str, str]] = set()  # logged as failing (log once per change)
        self._loop_error: str | None = None  # the last error of a whole round (logged once)
        self._wake = asyncio.Event()
        # in-process receivers (``local://name`` endpoints, see cityos.hub.client)
        self.local = local if local is not None else {}
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        # hardening (cityos.hub.netguard): without a test transport, every connection
        # goes to an address resolved and checked at connect time (no loopback/private ones
        # unless allow_private; redirects are not followed: a 3xx is a failed attempt)
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            transport=transport or AsyncGuardedTransport(allow_private=allow_private),
        )

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.run_once()
                self._round_error(None)
            except Exception as exc:  # the worker must outlive any one bad notification
                self._round_error(exc)
                await asyncio.sleep(self.poll_s)  # a store that fails at once: no hot loop
                sent = 0
            if not sent and not self._wake.is_set():
                # woken at once by a commit that queued notifications (PostgreSQL: NOTIFY)
                # or by a subscription's task finishing (its newer notifications are due)
                waiting = asyncio.ensure_future(
                    asyncio.to_thread(self.store.wait_for_outbox, self.poll_s)
                )
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({waiting, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()

    def _round_error(self, exc: Exception | None) -> None:
        """Log a failing round once (with its traceback), and once when rounds work again."""
        error = None if exc is None else f"{type(exc).__name__}: {exc}"
        if error == self._loop_error:
            return
        if exc is not None:
            log.error("notification delivery failed; retrying", exc_info=exc)
        else:
            log.info("notification delivery works again")
        self._loop_error = error

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the subscriptions being sent now (tests, shutdown)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=timeout)

    async def settled(self, tenant: str, sub_id: str, wait_s: float = 0.25) -> bool:
        """Wait, at most ``wait_s``, for a notification of this subscription that this worker
        is sending now, and say whether there was one: a client that reads the subscription
        as soon as its receiver has answered (ETSI 046_11, 046_12) then sees the outcome
        recorded, not the counts from before. One with nothing in flight is not held up."""
        task = self._inflight.get((tenant, sub_id))
        if task is None:
            return False
        await asyncio.wait([task], timeout=wait_s)
        return True

    async def run_once(self) -> int:
        """Start sending what is due now; how many notifications were started.

        Each subscription is sent by a task of its own that gives its claim back when its
        queue is done, so a hanging webhook holds up its own subscription and nothing else:
        the next round starts the others' new notifications while it hangs (and renews its
        claim, which the claim query does for subscriptions this worker already holds)."""
        # taken before claiming: a task that ends while the claim runs may already have sent
        # what the claim returns for its subscription
        busy = set(self._inflight)
        until = _later(self.claim_s)
        claimed = await asyncio.to_thread(
            self.store.claim_deliveries, self.owner, now_iso(), until, 500
        )
        if claimed.periodic:
            await asyncio.to_thread(self._queue_periodic, claimed.periodic)
            claimed = await asyncio.to_thread(
                self.store.claim_deliveries, self.owner, now_iso(), until, 500
            )
        by_sub: dict[tuple[str, str], list[Notification]] = defaultdict(list)
        for n in claimed.notifications:
            by_sub[(n.tenant, n.subscription_id)].append(n)
        started = 0
        deadline = time.monotonic() + self.claim_s / 2
        for key, queue in by_sub.items():
            if key in busy or key in self._inflight:
                continue  # still sending (its claim was renewed): these come again after
            self._inflight[key] = asyncio.create_task(self._send(key, queue, deadline))
            started += len(queue)
        # what was claimed but is not being sent (nothing due after all) goes back now
        await asyncio.to_thread(
            partial(self.store.release_deliveries, self.owner, keep=set(self._inflight))
        )
        return started

    async def _send(self, key: tuple[str, str], queue: list[Notification], deadline: float) -> None:
        try:
            await self._deliver_in_order(key, queue, deadline)
        except Exception as exc:  # the worker must outlive any one bad notification
            if key not in self._failing:
                log.error("delivery to subscription %s failed; retrying", key[1], exc_info=exc)
                self._failing.add(key)
            with contextlib.suppress(Exception):  # count it, so it backs off like the rest
                await self._failed(key, _runs(queue)[0], _reason(exc), sent=0)
        finally:  # the claim goes before the task: a round in between skips this one
            await asyncio.to_thread(self.store.release_deliveries, self.owner, [key])
            self._inflight.pop(key, None)
            self._wake.set()

    def _queue_periodic(self, due: list[tuple[str, str]]) -> None:
        for tenant, sub_id in due:
            payload, interval = (
                self.index.periodic_payload(tenant, sub_id) if self.index else (None, 0.0)
            )
            now = now_iso()
            next_at = _later(interval) if interval > 0 else _later(3600)
            self.store.add_periodic_notification(tenant, sub_id, payload, now, next_at)

    async def _deliver_in_order(
        self, key: tuple[str, str], queue: list[Notification], deadline: float
    ) -> None:
        tenant, sub_id = key
        sub = await asyncio.to_thread(self.store.get_subscription, tenant, sub_id)
        if sub is None:
            return
        if sub.get(IMPLICIT_KEY):  # the @context its Link names, put back if deleted
            await asyncio.to_thread(restore_implicit, self.store, sub)
        try:
            uri, headers, extra = _request_parts(tenant, sub)
        except Exception as exc:  # a stored subscription we cannot send to: a failed attempt
            await self._failed(key, _runs(queue)[0], _reason(exc), sent=0)
            return
        sent = 0
        for run in _runs(queue):
            if time.monotonic() > deadline:
                break  # the claim runs out: the rest go next round, still in order
            ok, error = await self._attempt(uri, run, extra, headers)
            if ok:
                await asyncio.to_thread(self._delivered, tenant, sub_id, [n.id for n in run])
                sent += 1
                continue
            await self._failed(key, run, error, sent=0)  # the successes are recorded
            return  # keep this subscription's order: the rest wait for the retry
        if sent:
            self._recovered(key)

    def _delivered(self, tenant: str, sub_id: str, ids: list[int]) -> None:
        """A notification the endpoint took: the subscription says so first (a client that
        reads it as soon as its receiver answered sees lastSuccess, ETSI 046_12), then the
        outbox lets it go (a crash between the two sends it again: at least once)."""
        self._record(tenant, sub_id, True, None)
        self.store.finish_notifications(ids, delivered=True, next_at=None)

    async def _attempt(
        self,
        uri: str,
        run: list[Notification],
        extra: dict[str, Any],
        headers: dict[str, str],
    ) -> tuple[bool, str | None]:
        """Build and send one notification; any exception is a failed attempt, not a crash."""
        try:
            payload = _merged(run)
            if extra:  # JSON-LD: the @context on the notification and on each entity in
                # data, so every entity is a JSON-LD document by itself (clause 5.3.2)
                data = [
                    {**e, **extra} if isinstance(e, dict) else e for e in payload.get("data", [])
                ]
                payload = {**payload, **extra, "data": data}
            return await self._post(uri, payload, headers)
        except Exception as exc:
            return False, _reason(exc)

    async def _failed(
        self, key: tuple[str, str], run: list[Notification], error: str | None, *, sent: int
    ) -> None:
        """A failed attempt: the run backs off (or is given up), the subscription says so."""
        tenant, sub_id = key
        attempts = max(n.attempts for n in run) + 1
        give_up = attempts >= self.max_attempts
        next_at = None if give_up else _later(self.backoff_s * 2 ** (attempts - 1))
        ids = [n.id for n in run]
        await asyncio.to_thread(
            partial(self.store.finish_notifications, ids, delivered=False, next_at=next_at)
        )
        if sent:
            await asyncio.to_thread(self._record, tenant, sub_id, True, None, sent=sent)
        await asyncio.to_thread(self._record, tenant, sub_id, False, error, give_up=give_up)
        if give_up:
            log.warning(
                "subscription %s: giving up after %d attempts, marked failed: %s",
                sub_id,
                attempts,
                error,
            )
        elif key not in self._failing:
            log.warning("subscription %s: notification failed, retrying: %s", sub_id, error)
        self._failing.add(key)

    def _recovered(self, key: tuple[str, str]) -> None:
        if key in self._failing:
            self._failing.discard(key)
            log.info("subscription %s: notifications delivered again", key[1])

    async def _post(
        self, uri: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> tuple[bool, str | None]:
        if uri.startswith("local://"):
            return await self._call_local(uri[len("local://") :], payload)
        if uri.startswith(("mqtt://", "mqtts://")):
            return await asyncio.to_thread(
                partial(publish_mqtt, allow_private=self.allow_private),
                uri,
                payload,
                self.timeout_s,
            )
        try:
            r = await self._client.post(uri, content=orjson.dumps(payload), headers=headers)
        except DestinationError as exc:  # hardening: refused by the SSRF guard
            return False, _refused(exc)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if 200 <= r.status_code < 300:
            return True, None
        return False, f"HTTP {r.status_code}"

    def _record(
        self,
        tenant: str,
        sub_id: str,
        ok: bool,
        error: str | None,
        *,
        give_up: bool = False,
        sent: int = 1,
    ) -> None:
        sub = self.store.get_subscription(tenant, sub_id)
        if sub is None:
            return
        now = now_iso()
        fields: dict[str, Any] = {"lastNotification": now}
        if ok:
            fields["timesSent"] = sub.get("timesSent", 0) + sent
            fields["lastSuccess"] = now
            if sub.get("status") == "failed":
                fields["status"] = "active"
        else:
            fields["timesFailed"] = sub.get("timesFailed", 0) + 1
            fields["lastFailure"] = now
            fields["lastFailureReason"] = error
            if give_up:
                fields["status"] = "failed"
        self.store.put_subscription_status(tenant, sub_id, fields)

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
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        await asyncio.to_thread(self.store.release_deliveries, self.owner)
        await self._client.aclose()


MERGE_MAX_ENTITIES = 100  # entities in one notification made of several queued ones


def _runs(queue: list[Notification]) -> list[list[Notification]]:
    """Consecutive notifications of one subscription, grouped to go out as one (up to
    MERGE_MAX_ENTITIES entities): under a backlog one POST carries many changes, in order."""
    runs: list[list[Notification]] = []
    size = 0
    for n in queue:
        count = len(n.payload.get("data", []))
        if runs and size + count <= MERGE_MAX_ENTITIES:
            runs[-1].append(n)
            size += count
        else:
            runs.append([n])
            size = count
    return runs


def _merged(run: list[Notification]) -> dict[str, Any]:
    """One notification carrying the data of a run, in order. Its id is derived from the
    ids it merges: the same run sent again (a retry) has the same id, a receiver that
    de-duplicates by id sees a redelivery; a different run is a different notification."""
    if len(run) == 1:
        return run[0].payload
    first = run[0].payload
    data = [e for n in run for e in n.payload.get("data", [])]
    merged = uuid.uuid5(uuid.NAMESPACE_URL, "|".join(str(n.payload.get("id")) for n in run))
    return {
        **first,
        "id": f"urn:ngsi-ld:Notification:{merged}",
        "notifiedAt": now_iso(),
        "data": data,
    }


def _link_target(context: Any) -> str:
    """A Link header names one URL: the context's own, else its first URL, else the core
    (an inline context object cannot be linked; JSON-LD receivers should ask for ld+json)."""
    if isinstance(context, str):
        return context
    if isinstance(context, list):
        return next((c for c in context if isinstance(c, str)), CORE_CONTEXT_URL)
    return CORE_CONTEXT_URL


def _refused(exc: DestinationError) -> str:
    hint = (
        " (allow with CITYOS_NOTIFY_ALLOW_PRIVATE=true)" if getattr(exc, "allowable", False) else ""
    )
    return f"endpoint refused: {exc}{hint}"


def publish_mqtt(
    uri: str, payload: dict[str, Any], timeout_s: float, *, allow_private: bool = False
) -> tuple[bool, str | None]:
    """Publish one notification (QoS 1) to ``mqtt://[user:pass@]host[:port]/topic``."""
    import paho.mqtt.client as mqtt

    parts = urlsplit(uri)
    topic = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not topic:
        return False, f"MQTT endpoint {uri!r} needs a host and a topic"
    # hardening (cityos.hub.netguard): mqtt:// connects to the address it checked;
    # mqtts:// connects by name after the check (TLS verifies the name, so a rebound address
    # cannot answer for it)
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        address = pinned_address(parts.hostname, port, allow_private=allow_private)
    except DestinationError as exc:
        return False, _refused(exc)
    except ValueError as exc:  # a port that is not a number
        return False, f"MQTT endpoint {uri!r}: {exc}"
    connect_host = parts.hostname if parts.scheme == "mqtts" else str(address)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    try:
        client.connect(connect_host, port, keepalive=30)
        client.loop_start()
        info = client.publish(topic, orjson.dumps(payload), qos=1)
        info.wait_for_publish(timeout=timeout_s)
        ok = info.is_published()
        return (True, None) if ok else (False, "MQTT publish not acknowledged in time")
    except (OSError, ValueError, RuntimeError) as exc:
        return False, f"MQTT {type(exc).__name__}: {exc}"
    finally:
        client.disconnect()  # first: it wakes the network thread, so loop_stop joins at once
        client.loop_stop()

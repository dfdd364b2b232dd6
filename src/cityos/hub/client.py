"""HubClient: how a service inside CityOS talks to the hub, in process, with NGSI-LD semantics.

Services never reach into the store or another service (DESIGN.md): they read and write
entities and subscribe to changes through this client. It takes and returns compacted
NGSI-LD with the client's ``@context``, exactly as the HTTP API would, and its
subscriptions go through the same matching, outbox and delivery worker as any other — the
endpoint is a Python callable instead of a URL (``local://<name>``). In-process
subscriptions live as long as the process that made them.

Reads honour the hub's access check (:mod:`cityos.hub.access`) exactly as the HTTP API
does: inside a request, the caller's rules narrow what :meth:`HubClient.query` and
:meth:`HubClient.get` return; in background work (no caller) everything is visible.
Arguments and results are plain JSON-like values, so an HTTP client can offer the same
methods.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from cityos.hub.access import check_history, restrict_query, visible, visible_all
from cityos.hub.core import Hub
from cityos.hub.delivery import Deliverer
from cityos.hub.errors import ResourceNotFound
from cityos.hub.model import to_hub_time
from cityos.hub.query.model import EntityQuery
from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_type_expr
from cityos.hub.representation import parse_attributes, parse_entity, render_entity
from cityos.hub.subscriptions import parse_subscription

Receiver = Callable[[dict[str, Any]], Any]


class HubClient:
    """A tenant's view of the hub, in one ``@context`` (None: the core context)."""

    def __init__(self, hub: Hub, *, context: Any = None, tenant: str = "") -> None:
        self.hub = hub
        self.tenant = tenant
        self.context = context
        self.ctx = hub.contexts.resolve(context)

    def for_tenant(self, tenant: str) -> HubClient:
        """The same client, speaking for another tenant."""
        return HubClient(self.hub, context=self.context, tenant=tenant)

    def for_context(self, context: Any) -> HubClient:
        """The same client, speaking in another ``@context`` (a URL, or a context object)."""
        return HubClient(self.hub, context=context, tenant=self.tenant)

    # -- entities ---------------------------------------------------------------------
    def create(self, entity: dict[str, Any]) -> None:
        self.hub.entities.create(self.tenant, parse_entity(entity, self.ctx))

    def upsert(self, entities: list[dict[str, Any]], *, replace: bool = True) -> list[str]:
        """Create, or replace (``replace=False``: update, keeping other attributes); the
        ids created."""
        parsed = [parse_entity(e, self.ctx) for e in entities]
        return self.hub.entities.batch_upsert(self.tenant, parsed, replace=replace).created

    def update_attrs(self, entity_id: str, attrs: dict[str, Any]) -> None:
        self.hub.entities.append_attrs(self.tenant, entity_id, parse_attributes(attrs, self.ctx))

    def delete(self, entity_id: str, *, history: bool = False) -> None:
        """``DELETE /entities/{id}``; with ``history``, ``DELETE /temporal/entities/{id}``:
        the entity and every past instance of its attributes go (what an erasure or a
        retention rule needs: a plain delete keeps the values in the history).
        :class:`ResourceNotFound` when it does not exist or the caller may not see it."""
        found = self.hub.store.get_entity(self.tenant, entity_id)
        if found is None or visible(found) is None:
            raise ResourceNotFound(f"entity {entity_id} not found")
        if history:
            check_history(found, found["attrs"], "delete")
        self.hub.entities.delete(self.tenant, entity_id)
        if history:
            self.hub.store.delete_history(self.tenant, entity_id)

    def get(self, entity_id: str, *, fmt: str = "normalized") -> dict[str, Any]:
        """One entity; :class:`ResourceNotFound` when it does not exist or the caller may
        not see it (as ``GET /entities/{id}`` answers)."""
        found = self.hub.store.get_entity(self.tenant, entity_id)
        shown = visible(found) if found is not None else None
        if shown is None:
            raise ResourceNotFound(f"entity {entity_id} not found")
        return render_entity(shown, self.ctx, fmt=fmt)

    def query(
        self,
        *,
        type: str | None = None,
        q: str | None = None,
        attrs: list[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        fmt: str = "normalized",
    ) -> list[dict[str, Any]]:
        """Entities as ``GET /entities`` returns them: ``type`` a type expression, ``q`` an
        NGSI-LD query, ``attrs`` the attributes to return (terms; an entity must have one
        of them), ``limit``/``offset`` a page; narrowed to what the caller may read."""
        query = self._entity_query(type=type, q=q, attrs=attrs, limit=limit, offset=offset)
        result = self.hub.store.query(self.tenant, restrict_query(query))
        keep = set(query.attrs) if query.attrs else None
        return [
            render_entity(e, self.ctx, fmt=fmt, attrs=keep) for e in visible_all(result.entities)
        ]

    def count(self, *, type: str | None = None, q: str | None = None) -> int:
        """How many entities match (``NGSILD-Results-Count``), of those the caller may read."""
        query = self._entity_query(type=type, q=q, limit=0, offset=0)
        query.count = True
        result = self.hub.store.query(self.tenant, restrict_query(query))
        return int(result.count or 0)

    def history(
        self,
        entity_id: str,
        attr: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100_000,
    ) -> list[tuple[str, Any]]:
        """``(observedAt, value)`` of one attribute's past instances, oldest first, as the
        temporal API has them (``timerel=between`` on observedAt); the caller's reading
        rights apply as for :meth:`get`."""
        found = self.hub.store.get_entity(self.tenant, entity_id)
        if found is None or visible(found) is None:
            raise ResourceNotFound(f"entity {entity_id} not found")
        rows = self.hub.store.history(
            self.tenant,
            entity_id,
            self.ctx.expand_term(attr),
            limit,
            time_property="observedAt",
            after=to_hub_time(after) if after else None,
            before=to_hub_time(before) if before else None,
        )
        out = [
            (r.observed_at, r.instance.get("value"))
            for r in rows
            if r.op != "delete" and r.observed_at is not None
        ]
        return sorted(out, key=lambda p: p[0])

    def _entity_query(
        self,
        *,
        type: str | None,
        q: str | None,
        attrs: list[str] | None = None,
        limit: int,
        offset: int,
    ) -> EntityQuery:
        query = EntityQuery(limit=limit, offset=offset)
        if type is not None:
            query.types = expand_types(parse_type_expr(type), self.ctx.expand_term)
        if q is not None:
            query.q = expand_q(parse_q(q), self.ctx.expand_term)
        if attrs:
            query.attrs = [self.ctx.expand_term(a) for a in attrs]
        return query

    # -- delivery -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def delivery(
        self, *, allow_private: bool = False
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """A delivery worker for a process that runs no server (a CLI run, a simulated
        hour): yields ``flush()``, which delivers every notification pending now — to
        ``local://`` receivers and URLs (``allow_private``: private addresses too, such as
        a field gateway's) — and closes the worker on exit. Under ``cityos serve`` the
        server's own worker delivers; a service does not need this there."""
        deliverer = Deliverer(
            self.hub.store,
            local=self.hub.local_receivers,
            index=self.hub.subscriptions,
            allow_private=allow_private,
        )

        async def flush() -> None:
            await deliverer.run_once()
            await deliverer.drain()

        try:
            yield flush
        finally:
            await deliverer.close()

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(
        self,
        receiver: Receiver,
        *,
        entity_type: str | None = None,
        watched_attributes: list[str] | None = None,
        q: str | None = None,
        attributes: list[str] | None = None,
        fmt: str = "normalized",
    ) -> str:
        """Call ``receiver(notification)`` for every matching change; the subscription id."""
        name = uuid.uuid4().hex
        body: dict[str, Any] = {
            "type": "Subscription",
            "notification": {"endpoint": {"uri": f"local://{name}"}, "format": fmt},
        }
        if entity_type:
            body["entities"] = [{"type": entity_type}]
        if watched_attributes:
            body["watchedAttributes"] = watched_attributes
        if q:
            body["q"] = q
        if attributes:
            body["notification"]["attributes"] = attributes
        doc = parse_subscription(body, self.ctx, allow_local=True)
        self.hub.local_receivers[name] = receiver
        self.hub.store.put_subscription(self.tenant, doc)
        self.hub.subscriptions.invalidate()
        return doc["id"]

    def unsubscribe(self, sub_id: str) -> None:
        doc = self.hub.store.get_subscription(self.tenant, sub_id)
        if doc is None:
            raise ResourceNotFound(f"subscription {sub_id} not found")
        self.hub.store.delete_subscription(self.tenant, sub_id)
        self.hub.subscriptions.invalidate()
        uri = doc["notification"]["endpoint"]["uri"]
        self.hub.local_receivers.pop(uri.removeprefix("local://"), None)

"""HubClient: how a service inside CityOS talks to the hub, in process, with NGSI-LD semantics.

Services never reach into the store or another service (DESIGN.md): they read and write
entities and subscribe to changes through this client. It takes and returns compacted
NGSI-LD with the client's ``@context``, exactly as the HTTP API would, and its
subscriptions go through the same matching, outbox and delivery worker as any other — the
endpoint is a Python callable instead of a URL (``local://<name>``). In-process
subscriptions live as long as the process that made them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from cityos.hub.core import Hub
from cityos.hub.errors import ResourceNotFound
from cityos.hub.query.model import EntityQuery
from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_type_expr
from cityos.hub.representation import parse_attributes, parse_entity, render_entity
from cityos.hub.subscriptions import parse_subscription

Receiver = Callable[[dict[str, Any]], Any]


class HubClient:
    def __init__(self, hub: Hub, *, context: Any = None, tenant: str = "") -> None:
        self.hub = hub
        self.tenant = tenant
        self.context = context
        self.ctx = hub.contexts.resolve(context)

    def for_tenant(self, tenant: str) -> HubClient:
        """The same client, speaking for another tenant."""
        return HubClient(self.hub, context=self.context, tenant=tenant)

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

    def get(self, entity_id: str, *, fmt: str = "normalized") -> dict[str, Any]:
        found = self.hub.store.get_entity(self.tenant, entity_id)
        if found is None:
            raise ResourceNotFound(f"entity {entity_id} not found")
        return render_entity(found, self.ctx, fmt=fmt)

    def query(
        self,
        *,
        type: str | None = None,
        q: str | None = None,
        limit: int = 100,
        offset: int = 0,
        fmt: str = "normalized",
    ) -> list[dict[str, Any]]:
        query = EntityQuery(limit=limit, offset=offset)
        if type is not None:
            query.types = expand_types(parse_type_expr(type), self.ctx.expand_term)
        if q is not None:
            query.q = expand_q(parse_q(q), self.ctx.expand_term)
        result = self.hub.store.query(self.tenant, query)
        return [render_entity(e, self.ctx, fmt=fmt) for e in result.entities]

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

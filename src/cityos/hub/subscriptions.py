"""NGSI-LD subscriptions: what a subscriber asks for, and which changes it is told about.

A subscription is kept as the subscriber wrote it (compacted, with its ``@context``) plus
status fields; its matcher is compiled once (types, ids, pattern, watched attributes, ``q``
and geo-query expanded with that context) and cached per tenant. Matching runs inside the
write transaction, and each notification goes into the outbox in that same transaction, so
a change and the news of it are committed together (see :mod:`cityos.hub.delivery`).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from cityos.hub.access import OWNER_KEY
from cityos.hub.errors import BadRequestData
from cityos.hub.ldcontext import Context, ContextResolver
from cityos.hub.model import DEFAULT_GEOPROPERTY, MAX_ID_BYTES, Entity, check_size, now_iso
from cityos.hub.netguard import literal_problem
from cityos.hub.query.evaluate import match_q, match_scope, match_types
from cityos.hub.query.geo import geo_match, parse_geo_query
from cityos.hub.query.model import EntityQuery, GeoQuery, QExpr, ScopeExpr, TypeExpr, TypeName
from cityos.hub.query.q import expand_q, expand_types, parse_q, parse_scope_q, parse_type_expr
from cityos.hub.query.regex import client_regex
from cityos.hub.representation import is_uri, render_entity
from cityos.hub.representation.join import JOINS, Fetch, join_entities
from cityos.hub.representation.names import check_datetime
from cityos.hub.store.base import Store

FORMATS = {"normalized", "keyValues", "concise", "simplified"}
TRIGGERS = {
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
}
# Without notificationTrigger (clause 5.2.12): attributes created and updated, which an
# entity's creation is too; deletions are heard of only when asked for.
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
# Delivery's bookkeeping, shown under ``notification`` (clause 5.2.14), never written by clients.
NOTIFICATION_STATUS_FIELDS = (
    "timesSent",
    "timesFailed",
    "lastNotification",
    "lastSuccess",
    "lastFailure",
    "lastFailureReason",
)
STATUS_FIELDS = (
    "status",
    "timesSent",
    "timesFailed",
    "lastNotification",
    "lastSuccess",
    "lastFailure",
)


def parse_subscription(
    body: Any,
    ctx: Context,
    *,
    sub_id: str | None = None,
    allow_local: bool = False,
    allow_private: bool = True,
) -> dict[str, Any]:
    """Validate a subscription body (clause 5.2.12) and return the document to store.

    ``allow_private`` False: an endpoint whose host is a literal loopback/private address
    (or ``localhost``) is refused here already; the deliverer checks every address it
    connects to anyway (cityos.hub.netguard), names included."""
    if not isinstance(body, dict):
        raise BadRequestData("a subscription must be a JSON object")
    if sub_id is None and "id" in body and (not isinstance(body["id"], str) or not body["id"]):
        raise BadRequestData("a subscription id, when given, must be a non-empty URI")
    sid = sub_id or body.get("id") or f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    if isinstance(sid, str):  # the ids' limit (docs/api.md, "Limits"), before it is stored
        check_size(sid, MAX_ID_BYTES, "subscription id")
    if not is_uri(sid):
        raise BadRequestData(f"subscription id {sid!r} is not a URI")
    if body.get("type", "Subscription") != "Subscription":
        raise BadRequestData("type must be Subscription")
    entities = body.get("entities")
    watched = body.get("watchedAttributes")
    if not entities and not watched:
        raise BadRequestData("a subscription needs entities or watchedAttributes")
    if entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise BadRequestData("entities must be a list of entity selectors")
        for sel in entities:
            if "type" not in sel:
                raise BadRequestData("each entity selector needs a type")
            if not isinstance(sel["type"], str) or not sel["type"]:
                raise BadRequestData("an entity selector's type must be a non-empty string")
            _type_expr(sel["type"], ctx)  # a malformed type expression: 400 now
            if isinstance(sel.get("id"), str):
                check_size(sel["id"], MAX_ID_BYTES, "entity selector id")
            if "id" in sel and not is_uri(sel["id"]):
                raise BadRequestData(f"entity selector id {sel['id']!r} is not a URI")
            if "idPattern" in sel:
                _regex(sel["idPattern"])
    if watched is not None and (
        not isinstance(watched, list) or not watched or not all(isinstance(a, str) for a in watched)
    ):
        raise BadRequestData("watchedAttributes must be a non-empty list of attribute names")
    if "q" in body:
        parse_q(_q_text(body["q"]))
    if "scopeQ" in body:
        parse_scope_q(str(body["scopeQ"]))
    if "geoQ" in body:
        _geo(body["geoQ"], ctx)
    notification = body.get("notification")
    if not isinstance(notification, dict):
        raise BadRequestData("a subscription needs a notification object")
    endpoint = notification.get("endpoint")
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("uri"), str):
        raise BadRequestData("notification.endpoint.uri is required")
    local = allow_local and endpoint["uri"].startswith("local://")
    if not local and not re.match(r"^(https?|mqtts?)://[^/\s]+", endpoint["uri"]):
        raise BadRequestData(
            f"notification endpoint {endpoint['uri']!r}: use http://, https:// or mqtt://host:port/topic"
        )
    if not local:  # hardening: a literal address the deliverer would refuse is a 400 now
        _check_endpoint_address(endpoint["uri"], allow_private)
    fmt = notification.get("format", "normalized")
    if fmt not in FORMATS:
        raise BadRequestData(f"notification.format must be one of {', '.join(sorted(FORMATS))}")
    attrs = notification.get("attributes")
    if attrs is not None and (
        not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)
    ):
        raise BadRequestData("notification.attributes must be a list of attribute names")
    _check_projection(notification)
    if notification.get("join", "@none") not in (*JOINS, "@none"):
        raise BadRequestData("notification.join must be inline, flat or @none")
    level = notification.get("joinLevel", 1)
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise BadRequestData("notification.joinLevel must be an integer >= 1")
    interval = body.get("timeInterval")
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise BadRequestData("timeInterval must be a number of seconds > 0")
        if watched is not None or body.get("throttling") is not None:
            raise BadRequestData(
                "a periodic subscription (timeInterval) cannot have watchedAttributes or throttling"
            )
        if not entities:
            raise BadRequestData("a periodic subscription (timeInterval) needs entities")
    triggers = body.get("notificationTrigger")
    if triggers is not None and (
        not isinstance(triggers, list) or not triggers or not set(triggers) <= TRIGGERS
    ):
        raise BadRequestData(f"notificationTrigger must be a list drawn from {sorted(TRIGGERS)}")
    throttling = body.get("throttling")
    if throttling is not None and (
        isinstance(throttling, bool) or not isinstance(throttling, int | float) or throttling < 0
    ):
        raise BadRequestData("throttling must be a number of seconds >= 0")
    if not isinstance(notification.get("showChanges", False), bool):
        raise BadRequestData("notification.showChanges must be true or false")
    jsonld_context = body.get("jsonldContext")
    if jsonld_context is not None and (
        not isinstance(jsonld_context, str) or not re.match(r"^https?://[^/\s]+", jsonld_context)
    ):
        raise BadRequestData("jsonldContext must be the http(s) URL of a JSON-LD @context")
    datasets = body.get("datasetId")
    if datasets is not None and (
        not isinstance(datasets, list)
        or not datasets
        or not all(isinstance(d, str) and (d == "@none" or is_uri(d)) for d in datasets)
    ):
        raise BadRequestData("datasetId must be a non-empty list of URIs (or @none)")
    if "isActive" in body and not isinstance(body["isActive"], bool):
        raise BadRequestData("isActive must be true or false")
    doc = {k: v for k, v in body.items() if k not in STATUS_FIELDS and k != "@context"}
    if "expiresAt" in body:  # clause 5.8.1/5.8.2: a date in the past is BadRequestData
        doc["expiresAt"] = check_datetime(body["expiresAt"], "expiresAt")
        if doc["expiresAt"] <= now_iso():
            raise BadRequestData(f"expiresAt {body['expiresAt']!r} is in the past")
    doc["id"] = sid
    doc["type"] = "Subscription"
    doc["notification"] = {
        k: v for k, v in notification.items() if k not in NOTIFICATION_STATUS_FIELDS
    } | {"format": fmt}
    doc["@context"] = ctx.source
    doc.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    doc.setdefault("status", "active" if doc.get("isActive", True) else "paused")
    doc.setdefault("timesSent", 0)
    doc.setdefault("timesFailed", 0)
    doc.setdefault("createdAt", now_iso())
    doc["modifiedAt"] = now_iso()
    return doc


def subscription_status(sub: dict[str, Any]) -> str:
    """The subscription's own status (clause 5.2.12): paused, expired or active."""
    if not sub.get("isActive", True):
        return "paused"
    expires = sub.get("expiresAt")
    if sub.get("status") == "expired" or (expires and now_iso() >= expires):
        return "expired"
    return "active"


def _check_projection(notification: dict[str, Any]) -> None:
    """``pick``/``omit`` (v1.8): lists of member names; neither goes with ``attributes``,
    and no member is both picked and omitted (clause 5.2.14)."""
    for key in ("pick", "omit"):
        value = notification.get(key)
        if value is not None and (
            not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value)
        ):
            raise BadRequestData(f"notification.{key} must be a non-empty list of member names")
        if value is not None and notification.get("attributes") is not None:
            raise BadRequestData(f"notification.{key} cannot be combined with attributes")
    both = set(notification.get("pick") or ()) & set(notification.get("omit") or ())
    if both:
        raise BadRequestData(f"{', '.join(sorted(both))} both picked and omitted")


def _check_endpoint_address(uri: str, allow_private: bool) -> None:
    try:
        host = urlsplit(uri).hostname or ""
        _check_host_name(uri)
    except ValueError as exc:  # IDNAError and httpx.InvalidURL are ValueErrors too
        raise BadRequestData(f"notification endpoint {uri!r}: {exc}") from None
    why = literal_problem(host, allow_private=allow_private)
    if why is not None:
        hint = (
            "; an operator may allow private endpoints with CITYOS_NOTIFY_ALLOW_PRIVATE=true"
            if literal_problem(host, allow_private=True) is None
            else ""
        )
        raise BadRequestData(f"notification endpoint {uri!r} is refused: {why}{hint}")


def _check_host_name(uri: str) -> None:
    """ValueError unless the host is one a client can connect to: parsed as httpx does
    (which decodes ``xn--`` labels, so ``xn--bad_.example`` fails here, not at every
    delivery attempt)."""
    try:
        host = httpx.URL(uri).host
    except ValueError as exc:
        raise ValueError(f"its host is not a valid (IDNA) host name: {exc}") from None
    if not host:
        raise ValueError("it names no host")


def _type_expr(raw: Any, ctx: Context) -> TypeExpr:
    """An entity selector's type: a name, or a type expression (``A|B``, ``A;B``, ``(…)``,
    clause 4.17) whose names are expanded with the subscription's @context."""
    text = str(raw)
    if not any(c in text for c in "|,;()"):
        return TypeName(ctx.expand_term(text))
    return expand_types(parse_type_expr(text), ctx.expand_term)


def _q_text(raw: Any) -> str:
    """A subscription's ``q`` as the query language reads it: percent-decoded, as a ``q``
    query parameter is (so ``name=="Eiffel%20Tower"`` means the same in both places)."""
    return unquote(str(raw))


def _regex(pattern: Any) -> Any:
    """The compiled idPattern, anchored as matching in full is (RE2: linear time)."""
    return client_regex(str(pattern), "idPattern")


def _geo(geo: Any, ctx: Context) -> GeoQuery:
    if not isinstance(geo, dict):
        raise BadRequestData("geoQ must be an object")
    gp = geo.get("geoproperty")
    return parse_geo_query(
        str(geo.get("georel", "")),
        str(geo.get("geometry", "")),
        geo.get("coordinates", ""),
        ctx.expand_term(gp) if gp else DEFAULT_GEOPROPERTY,
    )


@dataclass
class Matcher:
    """A subscription compiled against its own @context."""

    sub: dict[str, Any]
    ctx: Context
    selectors: list[tuple[TypeExpr, str | None, Any]]  # (types, expanded; id; pattern)
    watched: set[str] | None
    q: QExpr | None
    scope: ScopeExpr | None
    geo: GeoQuery | None
    attrs: set[str] | None
    triggers: frozenset[str] = frozenset(DEFAULT_TRIGGERS)
    out_ctx: Context | None = None  # jsonldContext: the terms notifications are written in
    last_sent: float = float("-inf")  # for throttling, in this process

    @classmethod
    def compile(cls, sub: dict[str, Any], resolver: ContextResolver) -> Matcher:
        ctx = resolver.resolve(sub.get("@context"))
        selectors = [
            (
                _type_expr(s["type"], ctx),
                s.get("id"),
                _regex(s["idPattern"]) if "idPattern" in s else None,
            )
            for s in sub.get("entities") or []
        ]
        watched = sub.get("watchedAttributes")
        attrs = sub["notification"].get("attributes")
        return cls(
            sub=sub,
            ctx=ctx,
            selectors=selectors,
            watched={ctx.expand_term(a) for a in watched} if watched else None,
            q=expand_q(parse_q(_q_text(sub["q"])), ctx.expand_term) if "q" in sub else None,
            scope=parse_scope_q(sub["scopeQ"]) if "scopeQ" in sub else None,
            geo=_geo(sub["geoQ"], ctx) if "geoQ" in sub else None,
            attrs={ctx.expand_term(a) for a in attrs} if attrs else None,
            triggers=frozenset(sub.get("notificationTrigger") or DEFAULT_TRIGGERS),
            out_ctx=resolver.resolve(sub["jsonldContext"]) if sub.get("jsonldContext") else None,
        )

    @property
    def periodic(self) -> bool:
        return bool(self.sub.get("timeInterval"))

    def live(self) -> bool:
        if not self.sub.get("isActive", True) or self.sub.get("status") == "expired":
            return False
        expires = self.sub.get("expiresAt")
        return not (expires and now_iso() > expires)

    def selects(self, entity: Entity) -> bool:
        """Whether an entity as it stands is one this subscription is about."""
        if self.selectors and not any(
            match_types(entity, t)
            and (eid is None or eid == entity["id"])
            and (pattern is None or pattern.fullmatch(entity["id"]))
            for t, eid, pattern in self.selectors
        ):
            return False
        if self.q is not None and not match_q(entity, self.q):
            return False
        if self.scope is not None and not match_scope(entity, self.scope):
            return False
        if self.geo is not None:
            shapes = [i.get("value") for i in entity["attrs"].get(self.geo.geoproperty, [])]
            if not any(isinstance(s, dict) and geo_match(s, self.geo) for s in shapes):
                return False
        return True

    def matches(self, old: Entity | None, new: Entity | None) -> bool:
        """Whether a change (None before: created; None after: deleted) is notified."""
        if self.periodic or not self.live():
            return False
        if new is None:  # deleted: judged on what it was
            if old is None or not self.triggers & {"entityDeleted", "attributeDeleted"}:
                return False
            if self.watched is not None and not self.watched & old["attrs"].keys():
                return False
            return self.selects(old)
        if old is None:
            if not self.triggers & {"entityCreated", "attributeCreated"}:
                return False
            if self.watched is not None and not self.watched & new["attrs"].keys():
                return False
            return self.selects(new)
        created, deleted, updated = _instance_changes(old, new)
        if self.watched is not None:
            created, deleted, updated = (
                {k for k in created if k[0] in self.watched},
                {k for k in deleted if k[0] in self.watched},
                {k for k in updated if k[0] in self.watched},
            )
        fired = (
            ("entityUpdated" in self.triggers and bool(created | deleted | updated))
            or ("attributeCreated" in self.triggers and bool(created))
            or ("attributeUpdated" in self.triggers and bool(updated))
            or ("attributeDeleted" in self.triggers and bool(deleted))
        )
        return fired and self.selects(new)

    def payload(
        self, hits: list[tuple[Entity | None, Entity | None]], fetch: Fetch | None = None
    ) -> dict[str, Any]:
        """The notification of ``hits``; ``fetch`` (ids -> stored entities of the tenant)
        brings in the linked entities of a ``join`` (clause 4.5.23)."""
        now = now_iso()
        data: list[dict[str, Any]] = []
        for old, new in hits:
            data.extend(self._joined(old, new, now, fetch))
        return {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": self.sub["id"],
            "notifiedAt": now,
            "data": data,
        }

    def _joined(
        self, old: Entity | None, new: Entity | None, now: str, fetch: Fetch | None
    ) -> list[dict[str, Any]]:
        """One changed entity, with its linked entities when the subscription joins them
        (``notification.join`` inline or flat, ``joinLevel`` hops), through the API's own
        :func:`cityos.hub.representation.join.join_entities`."""
        note = self.sub["notification"]
        join = note.get("join")
        if new is None or join not in JOINS or fetch is None:
            return [self._entity(old, new, now)]
        if OWNER_KEY in self.sub:  # made by a caller whose grant cannot be judged here:
            fetch = _nothing  # linked entities fail closed (docs/api.md, "Subscriptions")
        shown = self._shown(old, new, now)
        out = join_entities(
            [shown],
            self.out_ctx or self.ctx,
            fetch,
            join=join,
            level=int(note.get("joinLevel", 1)),
            fmt=_format(note),
            sys_attrs=bool(note.get("sysAttrs")),
            attrs=self.attrs,
            pick=note.get("pick"),
            omit=note.get("omit"),
        )
        out[0] = self._with_changes(out[0], old, shown)
        return out

    def _render(self, entity: Entity) -> dict[str, Any]:
        note = self.sub["notification"]
        return render_entity(
            entity,
            self.out_ctx or self.ctx,
            fmt=_format(note),
            sys_attrs=bool(note.get("sysAttrs")),
            attrs=self.attrs,
            pick=note.get("pick"),
            omit=note.get("omit"),
        )

    def _show_changes(self) -> bool:
        note = self.sub["notification"]
        return bool(note.get("showChanges")) and _format(note) == "normalized"

    def _entity(self, old: Entity | None, new: Entity | None, now: str) -> dict[str, Any]:
        """One entity of ``data`` (clause 5.8.6): as it stands; an attribute deleted (with
        ``attributeDeleted``) shown with the NGSI-LD Null; a deleted entity as its id, type
        and ``deletedAt``, its attributes as Nulls too with ``showChanges``; and with
        ``showChanges`` every changed instance carries its previous payload."""
        if new is not None:
            shown = self._shown(old, new, now)
            return self._with_changes(self._render(shown), old, shown)
        assert old is not None  # deleted: who it was and when it went
        show = self._show_changes()
        gone: dict[str, Any] = {}
        if show or "attributeDeleted" in self.triggers:  # its attributes, as Nulls
            gone = {
                a: _gone_attribute(insts, whole_entity=True, now=now)
                for a, insts in old["attrs"].items()
                if self.watched is None or show or a in self.watched
            }
        out = self._render({**old, "attrs": gone, "deletedAt": now})
        out["deletedAt"] = now
        return _with_previous(out, old, gone, self.out_ctx or self.ctx) if show else out

    def _shown(self, old: Entity | None, new: Entity, now: str) -> Entity:
        """The stored form to render: deleted attributes and instances as Nulls (with
        ``attributeDeleted``), only the subscription's datasets."""
        attrs = dict(new["attrs"])
        if old is not None and "attributeDeleted" in self.triggers:
            for attr, insts in old.get("attrs", {}).items():
                if attr not in attrs:  # the whole attribute went
                    attrs[attr] = _gone_attribute(insts, whole_entity=False, now=now)
                    continue
                kept = {i.get("datasetId") for i in attrs[attr]}
                dropped = [i for i in insts if i.get("datasetId") not in kept]
                if dropped:  # an instance went (DELETE …/attrs/{attr}?datasetId=)
                    attrs[attr] = attrs[attr] + [_nulled(i, gone=False, now=now) for i in dropped]
        return {**new, "attrs": _only_datasets(attrs, self.sub.get("datasetId"))}

    def _with_changes(
        self, out: dict[str, Any], old: Entity | None, shown: Entity
    ) -> dict[str, Any]:
        if not self._show_changes() or old is None:
            return out
        return _with_previous(out, old, shown["attrs"], self.out_ctx or self.ctx)

    def throttled(self, now: float) -> bool:
        """True while within ``throttling`` seconds of this subscription's last notification."""
        window = self.sub.get("throttling")
        if not isinstance(window, int | float) or window <= 0:
            return False
        if now - self.last_sent < window:
            return True
        self.last_sent = now
        return False


class SubscriptionIndex:
    """Every tenant's compiled subscriptions, reloaded from the store when they change."""

    def __init__(self, store: Store, resolver: ContextResolver) -> None:
        self.store = store
        self.resolver = resolver
        self._by_tenant: dict[str, list[Matcher]] | None = None
        self._version: int | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._by_tenant = None

    def for_tenant(
        self,
        tenant: str,
        version: int | None = None,
        load: Callable[[], list[tuple[str, dict[str, Any]]]] | None = None,
    ) -> list[Matcher]:
        """The tenant's matchers; ``version`` (read in the write transaction) reloads them
        when another worker changed a subscription since they were compiled, through
        ``load`` (the transaction's own reader; without one, the store's)."""
        with self._lock:
            if version is not None and version != self._version:
                self._by_tenant = None
                self._version = version
            if self._by_tenant is None:
                by: dict[str, list[Matcher]] = {}
                for t, sub in (load or self.store.list_subscriptions)():
                    try:
                        by.setdefault(t, []).append(Matcher.compile(sub, self.resolver))
                    except Exception:  # a context that vanished: the subscription sleeps
                        continue
                self._by_tenant = by
            return self._by_tenant.get(tenant, [])

    def notifications(
        self,
        tenant: str,
        changes: list[tuple[Entity | None, Entity | None]],
        version: int | None = None,
        fetch: Fetch | None = None,
        load: Callable[[], list[tuple[str, dict[str, Any]]]] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """(subscription id, payload) for every subscription a batch of changes matches.
        ``fetch`` reads linked entities for joins and ``load`` the subscriptions when they
        changed (the write transaction's own readers are best; without them, the store's)."""
        out = []
        now = time.monotonic()
        for matcher in self.for_tenant(tenant, version, load):
            hits = [(old, new) for old, new in changes if matcher.matches(old, new)]
            if hits and not matcher.throttled(now):
                out.append(
                    (matcher.sub["id"], matcher.payload(hits, fetch or self._fetcher(tenant)))
                )
        return out

    def _fetcher(self, tenant: str) -> Fetch:
        def fetch(ids: list[str]) -> dict[str, Entity]:
            if not ids:
                return {}
            query = EntityQuery(ids=list(ids), limit=len(ids))
            return {e["id"]: e for e in self.store.query(tenant, query).entities}

        return fetch

    def periodic_payload(self, tenant: str, sub_id: str) -> tuple[dict[str, Any] | None, float]:
        """A ``timeInterval`` subscription's notification now: every entity it selects as it
        stands (None when there is none, or it is paused or gone), and the interval."""
        sub = self.store.get_subscription(tenant, sub_id)
        if sub is None or not sub.get("timeInterval"):
            return None, 0.0
        interval = float(sub["timeInterval"])
        matcher = Matcher.compile(sub, self.resolver)
        if not matcher.live():
            return None, interval
        found: dict[str, Entity] = {}
        for types, eid, pattern in matcher.selectors:
            query = EntityQuery(
                types=types,
                ids=[eid] if eid else None,
                id_pattern=pattern.pattern if pattern else None,
                q=matcher.q,
                geo=matcher.geo,
                scope=matcher.scope,
                limit=PERIODIC_MAX_ENTITIES,
            )
            for entity in self.store.query(tenant, query).entities:
                found.setdefault(entity["id"], entity)
        if not found:
            return None, interval
        hits = [(None, e) for e in found.values()]
        return matcher.payload(hits, self._fetcher(tenant)), interval


PERIODIC_MAX_ENTITIES = 1000  # per selector and notification; a bigger set wants a query

NGSI_LD_NULL = "urn:ngsi-ld:null"
# each attribute type's payload member, and the member that carries its previous payload
_PAYLOAD_KEY = {
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}
_PREVIOUS = {
    "value": "previousValue",
    "object": "previousObject",
    "languageMap": "previousLanguageMap",
    "json": "previousJson",
    "vocab": "previousVocab",
    "valueList": "previousValueList",
    "objectList": "previousObjectList",
}


def _format(note: dict[str, Any]) -> Any:
    fmt = note.get("format", "normalized")
    return "keyValues" if fmt == "simplified" else fmt


def _nothing(ids: list[str]) -> dict[str, Entity]:
    return {}


def _only_datasets(attrs: dict[str, Any], datasets: list[str] | None) -> dict[str, Any]:
    """The subscription's ``datasetId`` member (v1.8): only instances of those datasets
    (``@none``: the default instance) are notified."""
    if not datasets:
        return attrs
    wanted = set(datasets)
    out = {}
    for attr, insts in attrs.items():
        kept = [i for i in insts if i.get("datasetId", "@none") in wanted]
        if kept:
            out[attr] = kept
    return out


def _instance_changes(
    old: Entity, new: Entity
) -> tuple[set[tuple[str, Any]], set[tuple[str, Any]], set[tuple[str, Any]]]:
    """(created, deleted, updated) attribute instances, each as (attribute, datasetId): an
    instance is an attribute in its own right (clause 4.5.5), so deleting one of several
    is an attribute deletion."""
    before = {
        (a, i.get("datasetId")): i for a, insts in old.get("attrs", {}).items() for i in insts
    }
    after = {(a, i.get("datasetId")): i for a, insts in new["attrs"].items() for i in insts}
    created = after.keys() - before.keys()
    deleted = before.keys() - after.keys()
    updated = {k for k in after.keys() & before.keys() if before[k] != after[k]}
    return created, deleted, updated


def _gone_attribute(
    instances: list[dict[str, Any]], *, whole_entity: bool, now: str
) -> list[dict[str, Any]]:
    """A deleted attribute as notified: one Null instance (its datasetId only when it had a
    single instance), whatever number of instances it had."""
    if len(instances) == 1:
        return [_nulled(instances[0], gone=whole_entity, now=now)]
    first = next((i for i in instances if "datasetId" not in i), instances[0])
    nulled = _nulled(first, gone=whole_entity, now=now)
    nulled.pop("datasetId", None)
    return [nulled]


def _nulled(inst: dict[str, Any], *, gone: bool, now: str) -> dict[str, Any]:
    """A deleted instance as notified: its type and the NGSI-LD Null as payload (a deleted
    attribute's languageMap is ``{"@none": Null}``; a deleted entity's the bare Null)."""
    key = _PAYLOAD_KEY.get(str(inst.get("type")), "value")
    null: Any = {"@none": NGSI_LD_NULL} if key == "languageMap" and not gone else NGSI_LD_NULL
    out = {"type": inst.get("type"), key: null}
    for key in ("datasetId", "createdAt", "modifiedAt"):  # (dates: shown with sysAttrs)
        if key in inst:
            out[key] = inst[key]
    out["deletedAt"] = now
    return out


def _with_previous(
    rendered: dict[str, Any], old: Entity, attrs: dict[str, Any], ctx: Context
) -> dict[str, Any]:
    """``showChanges``: each changed instance of the rendered (normalized) entity carries
    its previous payload, matched by ``datasetId``; added after rendering, since previous
    payloads are not members an instance is stored with."""
    for attr, instances in attrs.items():
        term = ctx.compact_iri(attr)
        shown = rendered.get(term)
        if shown is None:
            continue
        before = {i.get("datasetId"): i for i in old.get("attrs", {}).get(attr, [])}
        items = shown if isinstance(shown, list) else [shown]
        for inst, item in zip(instances, items, strict=False):
            prev = before.get(inst.get("datasetId"))
            if prev is None or prev == inst or not isinstance(item, dict):
                continue
            key = _PAYLOAD_KEY.get(str(prev.get("type")), "value")
            if key in prev:
                value = prev[key]
                if key == "vocab":
                    value = (
                        [ctx.compact_iri(v) for v in value]
                        if isinstance(value, list)
                        else ctx.compact_iri(value)
                    )
                item[_PREVIOUS[key]] = value
    return rendered

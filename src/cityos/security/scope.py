"""The rules applied to the data: what a principal's roles let it see and change of a tenant.

The door (:mod:`cityos.security.guard`) decides whether a route may be called at all; here
the same rules decide *which entities and attributes*:

- queries are narrowed **in the database** to the entity types the roles may read (so
  counts and pages are right), and ``q`` on an attribute the roles may not read is
  rewritten to a name no entity has — it behaves as if the attribute did not exist;
- entities are answered without the attributes the roles may not read (entities,
  GeoJSON, temporal, notifications alike), and a single entity of a type the roles may
  not read is answered 404, as if it did not exist;
- writes are checked entity by entity inside the transaction: the type (and id), and each
  attribute created, changed or removed; a refusal is 403 and nothing of the request is
  written.

The principal of the running request travels in a context variable set by the door, so the
entity service checks writes wherever they come from; background work (device ingest by
MQTT, counters, commands) runs with none and is the hub's own.

The hub asks through the interface it defines (:mod:`cityos.hub.access`); :class:`ScopeAccess`
implements it with these rules and :func:`install` makes it the hub's.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from cityos.hub import access as hub_access
from cityos.hub.access import OWNER_KEY, Access
from cityos.hub.errors import Forbidden, ResourceNotFound  # Forbidden: the hub's, kept here
from cityos.hub.model import Entity
from cityos.hub.query.model import (
    And,
    Comparison,
    EntityQuery,
    Exists,
    Not,
    Or,
    QExpr,
    TypeAnd,
    TypeExpr,
    TypeName,
    TypeOr,
)
from cityos.security.filters import HIDDEN, hide_filters
from cityos.security.policy import ANY, Policy, View
from cityos.security.principal import Principal

# Changes need the action on *every* type of the entity (before and after the change), so
# adding a writable type to an entity never opens the rest of it; reads need one type.
EVERY_TYPE = frozenset({"write", "delete"})


class Caller:
    """Who the running request is, where, and under which rules; its views are kept for
    the request, and a view that grants everything answers every check at once."""

    __slots__ = ("principal", "tenant", "policy", "_views")

    def __init__(self, principal: Principal, tenant: str, policy: Policy) -> None:
        self.principal = principal
        self.tenant = tenant
        self.policy = policy
        self._views: dict[str, View] = {}

    def view(self, action: str) -> View:
        found = self._views.get(action)
        if found is None:
            found = self._views[action] = self.policy.view(
                self.principal.roles, self.tenant, action
            )
        return found

    def may(self, action: str, entity: Entity | None = None, attr: str = ANY) -> bool:
        if self.view(action).everything:
            return True
        if entity is None and attr == ANY:
            return self.policy.may_act(self.principal.roles, self.tenant, action)
        if entity is None:
            return self.policy.allowed(self.principal.roles, self.tenant, action, attr=attr)
        allows = (self._allows(action, t, entity["id"], attr) for t in _types(entity))
        if action in EVERY_TYPE:  # a change must be allowed for each type the entity has
            return all(allows)
        return any(allows)  # reads: one readable type suffices (no role can add types)

    def refused_types(self, action: str, entity: Entity, attr: str = ANY) -> list[str]:
        """The entity's types (with its id and ``attr``) the rules do not allow ``action`` on."""
        return [t for t in _types(entity) if not self._allows(action, t, entity["id"], attr)]

    def _allows(self, action: str, etype: str, eid: str, attr: str) -> bool:
        return self.policy.allowed(
            self.principal.roles,
            self.tenant,
            action,
            etype=etype,
            eid=eid,
            attr=attr,
            subject=self.principal.subject,
        )


def _types(entity: Entity) -> list[str]:
    return entity.get("type") or [ANY]


CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def caller() -> Caller | None:
    """The running request's caller; None when authentication is off, for the hub's own
    background work, and for a device's own measures (which the door bound to that device
    and the IoT agent maps as its provisioning says). A device credential anywhere else is
    held to its roles' rules like any other."""
    return CALLER.get()


# -- reads ---------------------------------------------------------------------------------
def restrict_query(query: EntityQuery, action: str = "read") -> EntityQuery:
    """The query narrowed to what the caller may read: types in the database, hidden
    attributes out of ``q``."""
    who = caller()
    if who is None:
        return query
    view = who.view(action)
    if view.nothing:  # only by-id rules: nothing is listed (single entities still are)
        return replace(query, types=TypeName(HIDDEN))
    if not view.all_types:
        allowed: TypeExpr = _any_of(sorted(view.types))
        query = replace(
            query, types=allowed if query.types is None else TypeAnd((query.types, allowed))
        )
    return hide_filters(query, view)  # q, attrs, geoQ: per type, as if hidden were absent


def visible(entity: Entity, action: str = "read") -> Entity | None:
    """The entity as the caller may see it: None when it may not see it at all, else
    without the attributes it may not read."""
    who = caller()
    if who is None:
        return entity
    view = who.view(action)
    if view.everything:
        return entity
    if not who.may(action, entity):
        return None
    keep = view.attrs_for(entity["type"])
    if keep is None:
        return entity
    attrs = {a: v for a, v in entity["attrs"].items() if a in keep}
    if len(attrs) == len(entity["attrs"]):
        return {**entity, "attrs": attrs}
    return {**entity, "attrs": attrs, **_modified_by(entity, attrs)}


def _modified_by(entity: Entity, attrs: dict[str, Any]) -> dict[str, Any]:
    """The entity's ``modifiedAt`` as of the attributes shown: the time a hidden attribute
    last changed would tell the caller that it changed, and when."""
    times = [entity.get("createdAt")]
    times += [i.get("modifiedAt") for instances in attrs.values() for i in instances]
    found = [t for t in times if isinstance(t, str)]
    return {"modifiedAt": max(found)} if found and "modifiedAt" in entity else {}


def visible_all(entities: Iterable[Entity], action: str = "read") -> list[Entity]:
    return [e for e in (visible(x, action) for x in entities) if e is not None]


def readable_attrs(entity_types: list[str], action: str = "read") -> frozenset[str] | None:
    """The attributes of an entity of these types the caller may read (None: all)."""
    who = caller()
    return None if who is None else who.view(action).attrs_for(entity_types)


def raw_history_allowed(entity: Entity) -> bool:
    """Whether the caller may read, value by value, every attribute of the entity it may
    aggregate; if not, its aggregates are held to a minimum period (a researcher's)."""
    who = caller()
    if who is None or who.view("read").everything:
        return True
    if not who.may("read", entity):
        return False
    read = who.view("read").attrs_for(entity["type"])
    aggregated = who.view("aggregate").attrs_for(entity["type"])
    return read is None or (aggregated is not None and aggregated <= read)


def listed(etype: str, attr: str | None = None, action: str = "read") -> bool:
    """Whether the type listings (/types, /attributes) show the caller that entities of
    ``etype`` exist (and have ``attr``): only types it may query, only attributes it may
    read on that type; an attribute it may read nowhere is not listed at all."""
    who = caller()
    if who is None:
        return True
    view = who.view(action)
    if view.everything:
        return True
    if not view.all_types and etype not in view.types:
        return False
    keep = view.attrs_for([etype])
    return attr is None or keep is None or attr in keep


def scope_subscription(doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """A subscription as the caller may have it: its entity types must be ones the caller
    may subscribe to (403 otherwise); it may match (q, watchedAttributes, geoQ) only on
    attributes the caller may read on *every* type it names (403 otherwise), it watches only
    those (a change of a hidden attribute must not set off a notification: its timing would
    tell), and its notifications carry only those — fixed when it is made or changed (a
    later change of the rules applies when the subscription is next updated)."""
    who = caller()
    if who is None:
        return doc
    view = who.view("subscribe")
    selectors = doc.get("entities") or []
    types = [ctx.expand_term(s["type"]) for s in selectors]
    if not view.all_types:
        if not types:
            raise Forbidden("name the entity types: this caller may not subscribe to all")
        refused = [s["type"] for s, t in zip(selectors, types, strict=True) if t not in view.types]
        if refused:
            raise Forbidden(f"not allowed to subscribe to {', '.join(refused)}")
    keep = _readable_on_all(view, types)
    if keep is None:
        return doc
    hidden = sorted(
        name
        for name in _subscription_attrs(doc, ctx)
        if ":" in ctx.expand_term(name) and ctx.expand_term(name) not in keep
    )
    if hidden:  # matching on them would tell the subscriber what it may not read
        raise Forbidden(
            f"the subscription's q / watchedAttributes / geoQ use attributes this caller may "
            f"not read on every type it names: {', '.join(hidden)}"
        )
    doc = _watch_readable(doc, keep, ctx)
    asked = doc["notification"].get("attributes")
    names = [
        a
        for a in (asked or [ctx.compact_iri(k) for k in sorted(keep)])
        if ctx.expand_term(a) in keep
    ]
    if not names:
        raise Forbidden("none of the notified attributes may be read by this caller")
    return {**doc, "notification": {**doc["notification"], "attributes": names}}


def _readable_on_all(view: View, types: list[str]) -> frozenset[str] | None:
    """The attributes ``view`` lets be read on every one of ``types`` (None: all of them;
    no types: those readable on any type)."""
    limited = [s for s in (view.attrs_for([t]) for t in types or ["*"]) if s is not None]
    return frozenset.intersection(*limited) if limited else None


def _watch_readable(doc: dict[str, Any], keep: frozenset[str], ctx: Any) -> dict[str, Any]:
    """A change-driven subscription without watchedAttributes watches every attribute, so
    it would fire on a change of a hidden one: it watches the readable ones instead."""
    if doc.get("watchedAttributes") or doc.get("timeInterval"):
        return doc
    if not keep:
        raise Forbidden("this caller may read no attribute of these types: nothing to watch")
    return {**doc, "watchedAttributes": [ctx.compact_iri(k) for k in sorted(keep)]}


def _subscription_attrs(doc: dict[str, Any], ctx: Any) -> set[str]:
    """The attribute names a subscription matches on: its q, its watchedAttributes and its
    geoQ's GeoProperty."""
    from cityos.hub.query.q import parse_q

    names = set(doc.get("watchedAttributes") or [])
    if doc.get("q"):
        names |= _q_attrs(parse_q(doc["q"]))
    if isinstance(doc.get("geoQ"), dict):
        names.add(doc["geoQ"].get("geoproperty") or "location")
    return names


def _q_attrs(expr: QExpr) -> set[str]:
    if isinstance(expr, Comparison | Exists):
        return {expr.path.attr}
    if isinstance(expr, Not):
        return _q_attrs(expr.expr)
    if isinstance(expr, And | Or):
        return set().union(*(_q_attrs(e) for e in expr.items))
    return set()


# -- writes --------------------------------------------------------------------------------
def check_write(old: Entity | None, new: Entity | None) -> None:
    """Refuse (403) a change the caller's rules do not allow: creating or deleting an
    entity of that type/id, and creating, changing or removing each attribute."""
    who = caller()
    if who is None:
        return
    if new is None:
        assert old is not None
        _check_types(who, "delete", old)
        return
    if who.view("write").everything:
        return
    # every type before and after: a type added, kept or dropped needs the grant
    both = {**new, "type": list(dict.fromkeys([*(old or {}).get("type", []), *new["type"]]))}
    _check_types(who, "write", both)
    before = (old or {}).get("attrs", {})
    changed = {a for a, v in new["attrs"].items() if before.get(a) != v}
    changed |= {a for a in before if a not in new["attrs"]}
    _check_attrs(who, "write", both, changed)


def check_history(entity: Entity, attrs: Iterable[str], action: str, *, hide: bool = True) -> None:
    """Refuse an edit of an entity's history (the temporal API's writes and deletes, which
    change no current value the entity service would check): as missing (404) when the
    caller may not read the entity (``hide``), else 403 unless ``action`` is allowed on
    every type of it, its id and each attribute."""
    who = caller()
    if who is None:
        return
    if hide and visible(entity) is None:
        raise ResourceNotFound(f"entity {entity['id']} not found")
    if who.view(action).everything:
        return
    _check_types(who, action, entity)
    _check_attrs(who, action, entity, attrs)


def _check_types(who: Caller, action: str, entity: Entity) -> None:
    refused = who.refused_types(action, entity)
    if not refused:
        return
    if not who.may("read", entity):  # its types are not the caller's to learn
        raise Forbidden(f"not allowed to {action} {entity['id']}")
    raise Forbidden(
        f"not allowed to {action} {entity['id']}: its type(s) {', '.join(refused)} are not "
        f"granted (a change needs {action} on every type of the entity)"
    )


def _check_attrs(who: Caller, action: str, entity: Entity, attrs: Iterable[str]) -> None:
    """403 naming the refused attributes the caller may read; the others only counted (a
    name it may not read is not the caller's to learn)."""
    refused = sorted(a for a in set(attrs) if not who.may(action, entity, attr=a))
    if not refused:
        return
    named = [a for a in refused if who.may("read", entity, attr=a)]
    unnamed = len(refused) - len(named)
    what = ", ".join([*named, *([f"{unnamed} attribute(s) it may not read"] if unnamed else [])])
    raise Forbidden(f"not allowed to {action} {what} of {entity['id']}")


# -- subscriptions: their owners ------------------------------------------------------------
REDACTED = "REDACTED"


def subscription_owner() -> dict[str, str] | None:
    """Who a subscription made now belongs to: the request's principal (subject and
    issuer); None with authentication off (then only administrators reach it later)."""
    found = CALLER.get()
    if found is None:
        return None
    return {"subject": found.principal.subject, "issuer": found.principal.issuer}


def owns_subscription(doc: dict[str, Any]) -> bool:
    """Whether the caller made this subscription (always, with authentication off)."""
    found = CALLER.get()
    if found is None:
        return True
    return doc.get(OWNER_KEY) == subscription_owner()


def may_manage_subscription(doc: dict[str, Any]) -> bool:
    """Whether the caller may list, retrieve, update or delete this subscription: its owner,
    or a principal with ``administer`` in the tenant. To anyone else it does not exist."""
    found = CALLER.get()
    return found is None or owns_subscription(doc) or found.may("administer")


def subscription_for_caller(doc: dict[str, Any]) -> dict[str, Any]:
    """The subscription as the caller is shown it: without its owner record, and with the
    endpoint's credentials (URI userinfo, MQTT password, receiverInfo values) redacted for
    anyone but its owner."""
    shown = {k: v for k, v in doc.items() if k != OWNER_KEY}
    if owns_subscription(doc):
        return shown
    notification = dict(shown.get("notification") or {})
    endpoint = dict(notification.get("endpoint") or {})
    if isinstance(endpoint.get("uri"), str):
        endpoint["uri"] = _without_userinfo(endpoint["uri"])
    if isinstance(endpoint.get("receiverInfo"), list):
        endpoint["receiverInfo"] = [
            {**i, "value": REDACTED} if isinstance(i, dict) and "value" in i else i
            for i in endpoint["receiverInfo"]
        ]
    notification["endpoint"] = endpoint
    return {**shown, "notification": notification}


def _without_userinfo(uri: str) -> str:
    """``scheme://user:pass@host/…`` as ``scheme://REDACTED@host/…``."""
    scheme, sep, rest = uri.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return uri
    return f"{scheme}://{REDACTED}@{authority.rpartition('@')[2]}{slash}{path}"


# -- helpers -------------------------------------------------------------------------------
def _any_of(types: list[str]) -> TypeExpr:
    names: list[TypeExpr] = [TypeName(t) for t in types]
    return names[0] if len(names) == 1 else TypeOr(tuple(names))


def as_caller(principal: Principal, tenant: str, policy: Policy) -> Any:
    """Set the caller for the rest of this request (the door calls it). The rules are
    installed as the hub's access check first: a caller never meets the allow-all default."""
    if hub_access.current() is not SCOPE:
        install()
    return CALLER.set(Caller(principal, tenant, policy))


def as_hub() -> Any:
    """No caller for the rest of this request: the hub's own work (a device's measures,
    which the door bound to the device). Set explicitly, so nothing of an earlier request
    on the same connection carries over."""
    return CALLER.set(None)


# -- the hub's access check (cityos.hub.access), implemented by these rules ------------------
class ScopeAccess(Access):
    """:class:`cityos.hub.access.Access` by the running request's caller and its rules;
    with no caller, it allows what the default does."""

    def restrict_query(self, query: EntityQuery, action: str = "read") -> EntityQuery:
        return restrict_query(query, action)

    def visible(self, entity: Entity, action: str = "read") -> Entity | None:
        return visible(entity, action)

    def visible_all(self, entities: Iterable[Entity], action: str = "read") -> list[Entity]:
        return visible_all(entities, action)

    def readable_attrs(
        self, entity_types: list[str], action: str = "read"
    ) -> frozenset[str] | None:
        return readable_attrs(entity_types, action)

    def raw_history_allowed(self, entity: Entity) -> bool:
        return raw_history_allowed(entity)

    def listed(self, etype: str, attr: str | None = None, action: str = "read") -> bool:
        return listed(etype, attr, action)

    def check_write(self, old: Entity | None, new: Entity | None) -> None:
        check_write(old, new)

    def check_history(
        self, entity: Entity, attrs: Iterable[str], action: str, *, hide: bool = True
    ) -> None:
        check_history(entity, attrs, action, hide=hide)

    def scope_subscription(self, doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return scope_subscription(doc, ctx)

    def subscription_owner(self) -> dict[str, str] | None:
        return subscription_owner()

    def may_manage_subscription(self, doc: dict[str, Any]) -> bool:
        return may_manage_subscription(doc)

    def subscription_for_caller(self, doc: dict[str, Any]) -> dict[str, Any]:
        return subscription_for_caller(doc)


SCOPE = ScopeAccess()


def install() -> None:
    """Make these rules the hub's access check (the web application does, when it creates
    the door; :func:`as_caller` makes sure of it)."""
    hub_access.install(SCOPE)

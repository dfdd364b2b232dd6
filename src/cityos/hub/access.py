"""The access check the hub needs, defined by the hub and implemented by security.

The hub does not know who is calling or what the rules are: it asks. Every read it answers,
every write transaction, every subscription made or shown goes through the :class:`Access`
installed here. The default allows everything — what the hub does with authentication off,
and for its own background work (no caller). :mod:`cityos.security.scope` implements it
(the caller's roles, the tenant's policy) and installs it with :func:`install`: the web
application does when it creates the door, and the door's ``as_caller`` does too, so a
caller can never be set while the allow-all default is still in place.

The functions at module level are what the hub calls; each asks the installed access.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cityos.hub.errors import Forbidden
from cityos.hub.model import Entity
from cityos.hub.query.model import EntityQuery

__all__ = [
    "OWNER_KEY",
    "Access",
    "Forbidden",
    "check_history",
    "check_write",
    "current",
    "install",
    "listed",
    "may_manage_subscription",
    "raw_history_allowed",
    "readable_attrs",
    "restrict_query",
    "scope_subscription",
    "subscription_for_caller",
    "subscription_owner",
    "visible",
    "visible_all",
]

# who made a subscription, in the stored document only; never rendered, never accepted
OWNER_KEY = "cityos:owner"


class Access:
    """What the hub asks before it answers or writes. This base allows everything: no
    caller, every entity and attribute visible, every write and subscription accepted."""

    # -- reads -----------------------------------------------------------------------------
    def restrict_query(self, query: EntityQuery, action: str = "read") -> EntityQuery:
        """The query narrowed to what the caller may ``action`` (in the database)."""
        return query

    def visible(self, entity: Entity, action: str = "read") -> Entity | None:
        """The entity as the caller may see it; None when it may not see it at all."""
        return entity

    def visible_all(self, entities: Iterable[Entity], action: str = "read") -> list[Entity]:
        return [e for e in (self.visible(x, action) for x in entities) if e is not None]

    def readable_attrs(
        self, entity_types: list[str], action: str = "read"
    ) -> frozenset[str] | None:
        """The attributes of an entity of these types the caller may read (None: all)."""
        return None

    def raw_history_allowed(self, entity: Entity) -> bool:
        """Whether the caller may read the entity's history value by value."""
        return True

    def listed(self, etype: str, attr: str | None = None, action: str = "read") -> bool:
        """Whether the type listings show the caller ``etype`` (and its ``attr``)."""
        return True

    # -- writes ----------------------------------------------------------------------------
    def check_write(self, old: Entity | None, new: Entity | None) -> None:
        """Raise :class:`Forbidden` for a change the caller may not make (old None:
        created; new None: deleted). Called inside every write transaction."""

    def check_history(
        self, entity: Entity, attrs: Iterable[str], action: str, *, hide: bool = True
    ) -> None:
        """Raise for an edit of an entity's history the caller may not make."""

    # -- subscriptions ---------------------------------------------------------------------
    def scope_subscription(self, doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """The subscription as the caller may have it (or :class:`Forbidden`)."""
        return doc

    def subscription_owner(self) -> dict[str, str] | None:
        """Who a subscription made now belongs to (None: no caller)."""
        return None

    def may_manage_subscription(self, doc: dict[str, Any]) -> bool:
        """Whether the caller may see and change this subscription."""
        return True

    def subscription_for_caller(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The subscription as the caller is shown it (never its owner record)."""
        return {k: v for k, v in doc.items() if k != OWNER_KEY}


ALLOW_ALL = Access()
_installed: Access = ALLOW_ALL


def install(access: Access | None) -> Access:
    """Make ``access`` the hub's access check (None: the allow-all default again); returns
    the one it replaces."""
    global _installed
    previous, _installed = _installed, access or ALLOW_ALL
    return previous


def current() -> Access:
    return _installed


# -- what the hub calls ----------------------------------------------------------------------
def restrict_query(query: EntityQuery, action: str = "read") -> EntityQuery:
    return _installed.restrict_query(query, action)


def visible(entity: Entity, action: str = "read") -> Entity | None:
    return _installed.visible(entity, action)


def visible_all(entities: Iterable[Entity], action: str = "read") -> list[Entity]:
    return _installed.visible_all(entities, action)


def readable_attrs(entity_types: list[str], action: str = "read") -> frozenset[str] | None:
    return _installed.readable_attrs(entity_types, action)


def raw_history_allowed(entity: Entity) -> bool:
    return _installed.raw_history_allowed(entity)


def listed(etype: str, attr: str | None = None, action: str = "read") -> bool:
    return _installed.listed(etype, attr, action)


def check_write(old: Entity | None, new: Entity | None) -> None:
    _installed.check_write(old, new)


def check_history(entity: Entity, attrs: Iterable[str], action: str, *, hide: bool = True) -> None:
    _installed.check_history(entity, attrs, action, hide=hide)


def scope_subscription(doc: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return _installed.scope_subscription(doc, ctx)


def subscription_owner() -> dict[str, str] | None:
    return _installed.subscription_owner()


def may_manage_subscription(doc: dict[str, Any]) -> bool:
    return _installed.may_manage_subscription(doc)


def subscription_for_caller(doc: dict[str, Any]) -> dict[str, Any]:
    return _installed.subscription_for_caller(doc)

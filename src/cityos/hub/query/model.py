"""Parsed queries: the ASTs every parser produces and every evaluator / SQL compiler consumes.

Attribute names in these trees are *expanded IRIs* by the time a store sees them: parsers
produce terms as written and :func:`cityos.hub.query.expand` maps them through the caller's
``@context`` (entity ``id``/``type`` special paths are not expanded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------- q language


@dataclass(frozen=True)
class AttrPath:
    """``attr``, ``attr.sub`` (sub-attribute) or ``attr[a.b]`` (inside a compound value).

    ``attr`` and ``sub`` are terms (after parse) or IRIs (after expand); ``compound`` keys
    are never expanded. Special member paths like ``attr.observedAt``/``attr.unitCode``/
    ``attr.datasetId`` are represented as ``sub=("observedAt",)`` etc.; the evaluator treats
    a sub named after an instance member key as that member.
    """

    attr: str
    sub: tuple[str, ...] = ()
    compound: tuple[str, ...] = ()


@dataclass(frozen=True)
class Range:
    low: Any
    high: Any


@dataclass(frozen=True)
class Comparison:
    """``path op value``. ``op`` in ``== != > >= < <= ~= !~=``.

    ``value`` is a python scalar (str/int/float/bool), a ``list`` (any-of for ``==``,
    none-of for ``!=``), or a :class:`Range` (``==`` inside, ``!=`` outside). Dates/times
    stay strings: ISO 8601 sorts as text. For ``~=``/``!~=`` ``value`` is a regex string.
    """

    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True)
class Exists:
    """A bare path: the attribute (or sub-attribute / compound member) is present."""

    path: AttrPath


@dataclass(frozen=True)
class Not:
    expr: QExpr


@dataclass(frozen=True)
class And:
    items: tuple[QExpr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[QExpr, ...]


@dataclass(frozen=True)
class OfType:
    """The entity has one of ``types`` (expanded IRIs). No client writes it: the security
    scope guards a filter on an attribute with the types on which the caller may read it,
    so that on an entity of any other type the attribute behaves as if it did not exist."""

    types: tuple[str, ...]


QExpr = Comparison | Exists | Not | And | Or | OfType

# ---------------------------------------------------------------------------- type expressions


@dataclass(frozen=True)
class TypeName:
    name: str  # term, then expanded IRI


@dataclass(frozen=True)
class TypeAnd:
    items: tuple[TypeExpr, ...]


@dataclass(frozen=True)
class TypeOr:
    items: tuple[TypeExpr, ...]


TypeExpr = TypeName | TypeAnd | TypeOr

# ---------------------------------------------------------------------------- scopeQ


@dataclass(frozen=True)
class ScopeMatch:
    """One scope pattern: ``/a/b`` exact, ``/a/#`` the subtree, ``/a/+/c`` one level wildcard."""

    pattern: str


@dataclass(frozen=True)
class ScopeAnd:
    items: tuple[ScopeExpr, ...]


@dataclass(frozen=True)
class ScopeOr:
    items: tuple[ScopeExpr, ...]


ScopeExpr = ScopeMatch | ScopeAnd | ScopeOr

# ---------------------------------------------------------------------------- geoQ

GEORELS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")


@dataclass(frozen=True)
class GeoQuery:
    """A validated geo-query. ``geometry`` is a GeoJSON geometry dict (lon, lat; WGS 84).

    For ``near`` exactly one of ``max_distance``/``min_distance`` (metres) is set.
    ``geoproperty`` is the expanded IRI of the GeoProperty to test (default location).
    """

    georel: str
    geometry: dict[str, Any]
    geoproperty: str = "https://uri.etsi.org/ngsi-ld/location"
    max_distance: float | None = None
    min_distance: float | None = None


# ---------------------------------------------------------------------------- orderBy


ORDER_FIELDS = ("id", "type", "createdAt", "modifiedAt")


@dataclass(frozen=True)
class OrderKey:
    """One ``orderBy`` criterion (NGSI-LD v1.9.1 clause 4.23): an entity member (``field``:
    one of :data:`ORDER_FIELDS`) or an attribute ``path`` (its first instance decides).

    ``only_on``: the types (expanded IRIs) on which the value counts; elsewhere the entity
    sorts as if it lacked the attribute (the security scope sets it, as ``OfType`` in q).
    """

    path: AttrPath | None = None
    field: str | None = None
    descending: bool = False
    only_on: tuple[str, ...] | None = None


# ---------------------------------------------------------------------------- entity query


@dataclass
class EntityQuery:
    """Everything ``GET /entities`` and ``POST /entityOperations/query`` filter on."""

    types: TypeExpr | None = None
    ids: list[str] | None = None
    id_pattern: str | None = None
    attrs: list[str] | None = None  # entity must have at least one of these (expanded IRIs)
    q: QExpr | None = None
    geo: GeoQuery | None = None
    scope: ScopeExpr | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False
    order: tuple[OrderKey, ...] = ()  # orderBy; empty: insertion order
    extra: dict[str, Any] = field(default_factory=dict)

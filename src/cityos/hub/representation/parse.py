"""Request bodies (normalized, concise or simplified NGSI-LD) -> the hub's stored form.

GS CIM 009 v1.8 clause 4.5 lets a client write an attribute three ways: normalized (with
``"type"``), concise (``"type"`` left out and inferred from the member that carries the
payload) or as a bare value. All of them land in the one stored form of
:mod:`cityos.hub.model`, validated on the way in so the store only ever holds well-formed
data: bad input gets a :class:`~cityos.hub.errors.BadRequestData` that names the attribute.

Only ``ctx.expand_term`` is used: attribute names, sub-attribute names, entity types,
``objectType`` and ``vocab`` values are expanded; everything else is kept as written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from cityos.hub.errors import BadRequestData
from cityos.hub.model import (
    ATTRIBUTE_TYPES,
    INSTANCE_MEMBER_KEYS,
    LOCATION,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    NGSILD,
    OBSERVATION_SPACE,
    OPERATION_SPACE,
    VALUE_KEY,
    Entity,
    Instance,
    check_size,
)
from cityos.hub.representation.names import (
    GEOMETRY_TYPES,
    check_datetime,
    check_lang_tag,
    check_name,
    check_uri,
    is_geometry,
    is_uri,
    kind,
    parse_scope,
)

NGSI_LD_NULL = "urn:ngsi-ld:null"  # clause 4.5.2: a value that deletes what it targets


class TermExpander(Protocol):
    def expand_term(self, term: str) -> str: ...


# Which payload key implies which attribute type when "type" is left out (concise form).
_INFERRED_TYPE = {
    "value": "Property",
    "object": "Relationship",
    "languageMap": "LanguageProperty",
    "json": "JsonProperty",
    "vocab": "VocabProperty",
    "valueList": "ListProperty",
    "objectList": "ListRelationship",
}
# Members any attribute may carry, besides its payload key.
_COMMON_MEMBERS = frozenset({"type", "datasetId", "observedAt"})
# Extra members per attribute type.
_TYPE_MEMBERS: dict[str, frozenset[str]] = {
    "Property": frozenset({"value", "unitCode", "lang"}),
    "GeoProperty": frozenset({"value"}),
    "Relationship": frozenset({"object", "objectType"}),
    "LanguageProperty": frozenset({"languageMap"}),
    "JsonProperty": frozenset({"json"}),
    "VocabProperty": frozenset({"vocab"}),
    "ListProperty": frozenset({"valueList", "unitCode"}),
    "ListRelationship": frozenset({"objectList", "objectType"}),
}
# Members the hub sets itself: whatever a client sends for them is dropped.
_SYSTEM_MEMBERS = frozenset(
    {
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
    }
)
# Top-level keys of an entity body that are not attributes.
_ENTITY_KEYS = frozenset(
    {"id", "@id", "type", "@type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt"}
)
# Core attributes that GS CIM 009 clause 4.7 defines as GeoProperties.
_GEO_ATTRIBUTES = frozenset({LOCATION, OBSERVATION_SPACE, OPERATION_SPACE})


def _canonical_attr_type(value: Any) -> str | None:
    """``Property``, ``ngsi-ld:Property`` and the full IRI all name the same type."""
    if not isinstance(value, str):
        return None
    for prefix in (NGSILD, "ngsi-ld:"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    return value if value in ATTRIBUTE_TYPES else None


class _Parser:
    """Walks one payload; ``expand`` maps a term to its IRI (the identity for stored data)."""

    def __init__(self, expand: Callable[[str], str], where: str) -> None:
        self.expand = expand
        self.where = where

    def fail(self, path: str, message: str) -> BadRequestData:
        return BadRequestData(f"{self.where}: attribute {path!r}: {message}")

    # ------------------------------------------------------------------ attributes

    def attribute_name(self, term: Any, parent: str | None = None) -> str:
        where = self.where if parent is None else f"{self.where}: attribute {parent!r}"
        what = "an attribute name" if parent is None else "a sub-attribute name"
        if isinstance(term, str) and term.startswith("@"):
            raise BadRequestData(f"{where}: {term!r} cannot be used as {what}")
        check_name(term, where, what)
        iri = self.expand(term)
        check_name(iri, where, what)
        return iri

    def attributes(self, body: dict[str, Any], skip: frozenset[str]) -> dict[str, list[Instance]]:
        out: dict[str, list[Instance]] = {}
        terms: dict[str, str] = {}
        for term, raw in body.items():
            if term in skip:
                continue
            iri = self.attribute_name(term)
            if iri in out:
                raise BadRequestData(
                    f"{self.where}: attributes {terms[iri]!r} and {term!r} are the same "
                    f"attribute ({iri})"
                )
            terms[iri] = term
            out[iri] = self.attribute(iri, term, raw)
        return out

    def attribute(self, iri: str, path: str, raw: Any) -> list[Instance]:
        """All instances of one attribute: an object, a bare value, or an array of instances."""
        if isinstance(raw, list) and any(isinstance(item, dict) for item in raw):
            if not all(isinstance(item, dict) for item in raw):
                raise self.fail(
                    path, "an array of instances must hold only objects (a multi-attribute)"
                )
            instances = [self.instance(item, f"{path}[{i}]") for i, item in enumerate(raw)]
            self.check_dataset_ids(instances, path)
        else:
            instances = [self.instance(raw, path)]
        if iri in _GEO_ATTRIBUTES:
            for inst in instances:
                if inst["type"] != "GeoProperty":
                    raise self.fail(path, f"must be a GeoProperty, not a {inst['type']}")
        return instances

    def check_dataset_ids(self, instances: list[Instance], path: str) -> None:
        seen: set[str | None] = set()
        for inst in instances:
            dataset_id = inst.get("datasetId")
            if dataset_id in seen:
                what = "datasetId " + repr(dataset_id) if dataset_id else "no datasetId"
                raise self.fail(path, f"more than one instance with {what}")
            seen.add(dataset_id)

    # ------------------------------------------------------------------ instances

    def instance(self, raw: Any, path: str) -> Instance:
        """One instance in any input form -> a stored-form instance dict."""
        if raw is None:
            raise self.fail(path, "null is not a valid attribute value")
        if not isinstance(raw, dict):
            return {"type": "Property", "value": raw}
        if (
            isinstance(raw.get("type"), str) and raw["type"] in GEOMETRY_TYPES
        ):  # a bare GeoJSON geometry (concise GeoProperty)
            _validate_geometry(raw, f"{self.where}: attribute {path!r}")
            return {"type": "GeoProperty", "value": raw}
        attr_type = self.instance_type(raw, path)
        if attr_type is None:  # an object with no NGSI-LD member: a compound value
            return {"type": "Property", "value": raw}
        inst = self.members(raw, path, attr_type)
        payload = VALUE_KEY[attr_type]
        if payload not in inst:
            raise self.fail(path, f"{attr_type} has no {payload!r}")
        return inst

    def instance_type(self, raw: dict[str, Any], path: str) -> str | None:
        """The attribute type, written or inferred; None for an object without members."""
        if "type" in raw:
            attr_type = _canonical_attr_type(raw["type"])
            if attr_type is None:
                raise self.fail(
                    path,
                    f"unknown attribute type {raw['type']!r} (expected one of "
                    f"{', '.join(sorted(ATTRIBUTE_TYPES))})",
                )
            return attr_type
        payloads = [key for key in _INFERRED_TYPE if key in raw]
        if len(payloads) > 1:
            raise self.fail(
                path, f"cannot tell the attribute type: it has {' and '.join(payloads)}"
            )
        if payloads:
            key = payloads[0]
            if key == "value" and is_geometry(raw["value"]):
                return "GeoProperty"
            return _INFERRED_TYPE[key]
        members = sorted(k for k in raw if k in INSTANCE_MEMBER_KEYS)
        if members:
            raise self.fail(path, f"Property has no 'value' (it has {', '.join(members)})")
        return None

    def members(self, raw: dict[str, Any], path: str, attr_type: str | None) -> Instance:
        """Validate every member and sub-attribute of one instance object."""
        inst: Instance = {} if attr_type is None else {"type": attr_type}
        allowed = _COMMON_MEMBERS | _TYPE_MEMBERS[attr_type] if attr_type else None
        sub_terms: dict[str, str] = {}
        for key, value in raw.items():
            if key == "type" or key in _SYSTEM_MEMBERS:
                continue
            if key in INSTANCE_MEMBER_KEYS:
                if allowed is not None and key not in allowed:
                    raise self.fail(path, f"{attr_type} does not take {key!r}")
                inst[key] = self.member(key, value, path, attr_type)
                continue
            iri = self.attribute_name(key, path)
            if iri in sub_terms or iri in inst:
                raise self.fail(path, f"sub-attribute {key!r} is given twice")
            sub_terms[iri] = key
            sub_path = f"{path}.{key}"
            if isinstance(value, list) and any(isinstance(item, dict) for item in value):
                raise self.fail(sub_path, "a sub-attribute cannot have several instances")
            inst[iri] = self.instance(value, sub_path)
        return inst

    def member(self, key: str, value: Any, path: str, attr_type: str | None) -> Any:
        if value is None:
            raise self.fail(path, f"{key!r} must not be null")
        if key == "value":
            if attr_type == "GeoProperty" and value != NGSI_LD_NULL:  # null: a deletion
                if not isinstance(value, dict):
                    raise self.fail(
                        path, f"GeoProperty value must be a GeoJSON geometry, got {kind(value)}"
                    )
                _validate_geometry(value, f"{self.where}: attribute {path!r}")
            return value
        if key == "object":
            return self.uris(value, path, "object", allow_list=True)
        if key in ("objectType", "vocab"):
            return self.terms(value, path, key)
        if key == "languageMap":
            return self.language_map(value, path)
        if key == "json":
            return value
        if key == "valueList":
            if not isinstance(value, list):
                raise self.fail(path, f"'valueList' must be an array, got {kind(value)}")
            return value
        if key == "objectList":
            return self.object_list(value, path)
        if key == "datasetId":
            return self.uri(value, path, "datasetId")
        if key == "observedAt":
            return check_datetime(value, f"{self.where}: attribute {path!r}: observedAt")
        if key == "unitCode":
            if not isinstance(value, str) or not value:
                raise self.fail(path, f"'unitCode' must be a non-empty string, got {kind(value)}")
            return value
        if key == "lang":
            return check_lang_tag(value, f"{self.where}: attribute {path!r}: lang")
        raise self.fail(path, f"{key!r} cannot be set by a client")  # pragma: no cover

    def uris(self, value: Any, path: str, key: str, *, allow_list: bool) -> Any:
        items = value if allow_list and isinstance(value, list) else [value]
        if not items:
            raise self.fail(path, f"{key!r} must not be an empty array")
        for item in items:
            self.uri(item, path, key)
        return value

    def uri(self, value: Any, path: str, what: str) -> Any:
        """A URI member (datasetId, a relationship's object): a URI within the id limit."""
        if isinstance(value, str):
            check_size(value, MAX_ID_BYTES, f"{self.where}: attribute {path!r}: {what}")
        if not is_uri(value):
            raise self.fail(path, f"{what} {value!r} is not a URI")
        return value

    def terms(self, value: Any, path: str, key: str) -> Any:
        """``objectType``/``vocab``: a term or a list of terms, stored expanded."""
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, str) and item for item in items):
            raise self.fail(path, f"{key!r} must be a string or a non-empty array of strings")
        for item in items:
            check_name(item, f"{self.where}: attribute {path!r}", key)
        expanded = [self.expand(item) for item in items]
        return expanded if isinstance(value, list) else expanded[0]

    def language_map(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict) or not value:
            raise self.fail(path, f"'languageMap' must be a non-empty object, got {kind(value)}")
        for tag, text in value.items():
            check_lang_tag(tag, f"{self.where}: attribute {path!r}: languageMap")
            ok = isinstance(text, str) or (
                isinstance(text, list) and all(isinstance(t, str) for t in text)
            )
            if not ok:
                raise self.fail(
                    path, f"languageMap[{tag!r}] must be a string or an array of strings"
                )
        return value

    def object_list(self, value: Any, path: str) -> list[Any]:
        """``objectList``: URIs, each bare or as ``{"object": uri}``; kept as written."""
        if not isinstance(value, list):
            raise self.fail(path, f"'objectList' must be an array, got {kind(value)}")
        for item in value:
            uri = item.get("object") if isinstance(item, dict) else item
            if isinstance(uri, str):
                check_size(uri, MAX_ID_BYTES, f"{self.where}: attribute {path!r}: objectList item")
            if not is_uri(uri):
                raise self.fail(path, f"objectList item {item!r} is not a URI")
        return value


def _validate_geometry(geometry: dict[str, Any], where: str) -> None:
    """Full GeoJSON check (ranges, closed rings, nesting) from the geo-query module."""
    from cityos.hub.query.geo import validate_geometry

    validate_geometry(geometry, where)


def _require_object(body: Any, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestData(f"{where}: expected a JSON object, got {kind(body)}")
    return body


def parse_types(value: Any, ctx: TermExpander, where: str = "entity") -> list[str]:
    """Entity ``type``: a term or a non-empty list of terms -> expanded, de-duplicated list."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BadRequestData(f"{where}: type must be a string or a non-empty array of strings")
    out: list[str] = []
    for item in items:
        check_name(item, where, "type")
        iri = check_size(ctx.expand_term(item), MAX_NAME_BYTES, f"{where}: type (expanded)")
        if iri.startswith("@"):  # e.g. "type" itself, a JSON-LD keyword in the core context
            raise BadRequestData(f"{where}: type {item!r} names the JSON-LD keyword {iri}")
        if iri not in out:
            out.append(iri)
    return out


def parse_entity(body: Any, ctx: TermExpander, *, where: str = "entity") -> Entity:
    """A whole entity (create, upsert, batch item) -> stored form, fully validated.

    ``@context`` is ignored (the caller resolved it into ``ctx``); ``createdAt``/
    ``modifiedAt``/``deletedAt`` from the client are dropped. The result has ``id``,
    ``type``, ``attrs`` and ``scope`` when given; the caller adds the system timestamps.
    """
    body = _require_object(body, where)
    if "id" in body and "@id" in body:
        raise BadRequestData(f"{where}: give 'id' or '@id', not both")
    if "type" in body and "@type" in body:
        raise BadRequestData(f"{where}: give 'type' or '@type', not both")
    entity_id = body.get("id", body.get("@id"))
    if entity_id is None:
        raise BadRequestData(f"{where}: 'id' is missing")
    check_uri(entity_id, where)
    where = f"{where} {entity_id!r}"
    raw_type = body.get("type", body.get("@type"))
    if raw_type is None:
        raise BadRequestData(f"{where}: 'type' is missing")
    entity: Entity = {"id": entity_id, "type": parse_types(raw_type, ctx, where)}
    if "scope" in body:
        entity["scope"] = parse_scope(body["scope"], where)
    entity["attrs"] = _Parser(ctx.expand_term, where).attributes(body, _ENTITY_KEYS)
    return entity


def parse_attributes(
    body: Any, ctx: TermExpander, *, where: str = "body"
) -> dict[str, list[Instance]]:
    """A fragment of attributes (append, update, merge) -> expanded IRI -> instances.

    ``id``, ``type``, ``scope``, ``@context`` and system timestamps are not attributes and
    are ignored here (a caller that honours ``scope`` on merge reads it with
    :func:`parse_scope`).
    """
    body = _require_object(body, where)
    return _Parser(ctx.expand_term, where).attributes(body, _ENTITY_KEYS)


def parse_attribute(
    name_iri: str, body: Any, ctx: TermExpander, *, name: str | None = None, where: str = "body"
) -> list[Instance]:
    """The payload of one attribute (e.g. ``POST /entities/{id}/attrs`` item, replace attr)."""
    parser = _Parser(ctx.expand_term, where)
    return parser.attribute(name_iri, name or name_iri, body)


def parse_partial_instance(
    body: Any, ctx: TermExpander, *, name: str = "attribute", where: str = "body"
) -> dict[str, Any]:
    """A partial instance (``PATCH /entities/{id}/attrs/{attr}``): members to merge.

    Neither ``type`` nor a payload is required; each member given is validated (against
    ``type`` when given) and sub-attribute names are expanded. The result holds only what
    the client sent (minus system members), so the caller can merge it into the old instance
    and check the merged one with :func:`validate_stored_instance`.
    """
    body = _require_object(body, where)
    parser = _Parser(ctx.expand_term, where)
    attr_type: str | None = None
    if "type" in body:
        attr_type = parser.instance_type(body, name)
    return parser.members(body, name, attr_type)


def validate_stored_instance(inst: Instance, *, name: str, where: str = "attribute") -> None:
    """Check an instance already in stored form (e.g. after a merge); raises BadRequestData."""
    parser = _Parser(lambda iri: iri, where)
    raw = {k: v for k, v in inst.items() if k not in _SYSTEM_MEMBERS}
    if "type" not in raw:
        raise parser.fail(name, "has no 'type'")
    checked = parser.instance(raw, name)
    if checked["type"] != inst["type"]:
        raise parser.fail(name, f"is a {checked['type']}, not a {inst['type']}")

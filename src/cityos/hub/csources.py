"""Context source registrations (clause 5.2.9): what another broker or source says it can
answer, checked, kept in stored form, matched against a discovery query and rendered.

A registration is stored with every user term expanded (entity types, property and
relationship names, extra members), as entities are, so that it is compacted on the way
out with the caller's @context and matched whatever context the asker uses. It lives in the
store's generic documents (``Store.put_doc``) under :data:`KIND`, per tenant: no table of
its own. Matching follows clause 5.12 (context source discovery): a registration matches
when one of its ``information`` items can hold the entities and attributes asked for, and
its properties, location and time intervals pass the other filters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cityos.hub.errors import BadRequestData
from cityos.hub.ldcontext import Context
from cityos.hub.model import MAX_ID_BYTES, Entity, check_size, now_iso, to_hub_time
from cityos.hub.query.evaluate import match_q, match_types
from cityos.hub.query.geo import geo_match, validate_geometry
from cityos.hub.query.model import GeoQuery, QExpr, TypeExpr
from cityos.hub.query.regex import client_regex
from cityos.hub.representation import is_uri

KIND = "csource-registration"  # Store.put_doc kind
TYPE = "ContextSourceRegistration"
MODES = ("inclusive", "exclusive", "redirect", "auxiliary")
# clause 4.20: single operations and the named groups of them
OPERATIONS = frozenset(
    {
        "createEntity",
        "updateEntity",
        "appendAttrs",
        "updateAttrs",
        "deleteAttrs",
        "deleteEntity",
        "createBatch",
        "upsertBatch",
        "updateBatch",
        "deleteBatch",
        "upsertTemporal",
        "appendAttrsTemporal",
        "deleteAttrsTemporal",
        "updateAttrsTemporal",
        "deleteAttrInstanceTemporal",
        "deleteTemporal",
        "mergeEntity",
        "replaceEntity",
        "replaceAttrs",
        "mergeBatch",
        "retrieveEntity",
        "queryEntity",
        "queryBatch",
        "retrieveTemporal",
        "queryTemporal",
        "retrieveEntityTypes",
        "retrieveEntityTypeDetails",
        "retrieveEntityTypeInfo",
        "retrieveAttrTypes",
        "retrieveAttrTypeDetails",
        "retrieveAttrTypeInfo",
        "createSubscription",
        "updateSubscription",
        "retrieveSubscription",
        "querySubscription",
        "deleteSubscription",
        "federationOps",
        "updateOps",
        "retrieveOps",
        "redirectionOps",
    }
)
DEFAULT_OPERATIONS = ["federationOps"]
# operations (clause 4.20) that let the hub forward to the source (federation): a query as
# GET /entities (queryEntity), a retrieval by id as GET /entities/{id} (retrieveEntity);
# the groups hold both
_READ_GROUPS = {"federationOps", "retrieveOps", "redirectionOps"}
QUERY_OPERATIONS = frozenset({*_READ_GROUPS, "queryEntity"})
RETRIEVE_OPERATIONS = frozenset({*_READ_GROUPS, "retrieveEntity"})
INTERVALS = ("observationInterval", "managementInterval")
GEOMETRIES = ("location", "observationSpace", "operationSpace")
# members kept as written (no term in them is a user term)
PLAIN = (
    "endpoint",
    "expiresAt",
    "registrationName",
    "description",
    "tenant",
    "contextSourceInfo",
    "refreshRate",
    "scope",
    "management",
    *INTERVALS,
    *GEOMETRIES,
)
SYSTEM = ("createdAt", "modifiedAt")
STATUS = ("status", "timesSent", "timesFailed", "lastSuccess", "lastFailure")
RESERVED = {"id", "type", "information", "mode", "operations", "@context", *PLAIN}
PROPS = "props"  # stored form: expanded extra member -> value
# contextSourceInfo keys whose values are credentials for the source: sent to it, never shown
SECRET_KEYS = frozenset({"authorization", "x-api-key", "apikey", "fiware-token", "x-auth-token"})
REDACTED = "********"


def _check_time(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequestData(f"{what} must be a date-time string")
    try:
        return to_hub_time(value)
    except ValueError:
        raise BadRequestData(f"{what} {value!r} is not an ISO 8601 date-time") from None


def _names(value: Any, what: str, ctx: Context) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequestData(f"{what} must be a non-empty list of names")
    return [ctx.expand_term(v) for v in value]


def _entity_info(sel: Any, ctx: Context) -> dict[str, Any]:
    if not isinstance(sel, dict):
        raise BadRequestData("information.entities must be a list of objects")
    if not isinstance(sel.get("type"), str) or not sel["type"]:
        raise BadRequestData("each information.entities item needs a type")
    out: dict[str, Any] = {"type": ctx.expand_term(sel["type"])}
    if "id" in sel:
        if not isinstance(sel["id"], str) or not is_uri(sel["id"]):
            raise BadRequestData(f"information.entities id {sel.get('id')!r} is not a URI")
        out["id"] = check_size(sel["id"], MAX_ID_BYTES, "information.entities id")
    if "idPattern" in sel:
        if not isinstance(sel["idPattern"], str):
            raise BadRequestData("information.entities idPattern must be a string")
        client_regex(sel["idPattern"], "idPattern")
        out["idPattern"] = sel["idPattern"]
    return out


def _information(value: Any, ctx: Context) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequestData("information must be a non-empty list of RegistrationInfo objects")
    infos = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequestData("each information item must be an object")
        unknown = set(item) - {"entities", "propertyNames", "relationshipNames"}
        if unknown:
            raise BadRequestData(f"unknown member(s) of information: {', '.join(sorted(unknown))}")
        if not item:
            raise BadRequestData(
                "an information item needs entities, propertyNames or relationshipNames"
            )
        info: dict[str, Any] = {}
        if "entities" in item:
            ents = item["entities"]
            if not isinstance(ents, list) or not ents:
                raise BadRequestData("information.entities must be a non-empty list")
            info["entities"] = [_entity_info(e, ctx) for e in ents]
        for key in ("propertyNames", "relationshipNames"):
            if key in item:
                info[key] = _names(item[key], f"information.{key}", ctx)
        infos.append(info)
    return infos


def _interval(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or "startAt" not in value:
        raise BadRequestData(f"{what} must be an object with startAt (and optionally endAt)")
    unknown = set(value) - {"startAt", "endAt"}
    if unknown:
        raise BadRequestData(f"unknown member(s) of {what}: {', '.join(sorted(unknown))}")
    start = _check_time(value["startAt"], f"{what}.startAt")
    if "endAt" in value and _check_time(value["endAt"], f"{what}.endAt") < start:
        raise BadRequestData(f"{what}.endAt is before its startAt")
    return dict(value)


def _plain(key: str, value: Any) -> Any:
    """Check a member kept as written; its value, or BadRequestData."""
    if key == "endpoint":
        if not isinstance(value, str) or not is_uri(value):
            raise BadRequestData("endpoint must be a URI")
        check_size(value, MAX_ID_BYTES, "endpoint")
    elif key == "expiresAt":
        if _check_time(value, "expiresAt") <= now_iso():
            raise BadRequestData("expiresAt must be in the future")
    elif key in INTERVALS:
        _interval(value, key)
    elif key in GEOMETRIES:
        validate_geometry(value, key)
    elif key in ("registrationName", "description", "tenant"):
        if not isinstance(value, str):
            raise BadRequestData(f"{key} must be a string")
    elif key == "contextSourceInfo":
        if not isinstance(value, list) or not all(
            isinstance(kv, dict)
            and set(kv) == {"key", "value"}
            and all(isinstance(x, str) for x in kv.values())
            for kv in value
        ):
            raise BadRequestData("contextSourceInfo must be a list of {key, value} strings")
    elif key == "refreshRate":
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BadRequestData("refreshRate must be a number of seconds > 0")
    elif key == "scope":
        scopes = value if isinstance(value, list) else [value]
        if not scopes or not all(isinstance(s, str) and s.startswith("/") for s in scopes):
            raise BadRequestData("scope must be a scope string or a list of them")
    return value


def parse_registration(
    body: Any, ctx: Context, *, reg_id: str | None = None, created_at: str | None = None
) -> dict[str, Any]:
    """Validate a CSourceRegistration body (clause 5.2.9); the stored form."""
    if not isinstance(body, dict):
        raise BadRequestData("a context source registration must be a JSON object")
    rid = reg_id or body.get("id") or f"urn:ngsi-ld:ContextSourceRegistration:{uuid.uuid4()}"
    if not isinstance(rid, str) or not is_uri(rid):
        raise BadRequestData(f"registration id {rid!r} is not a URI")
    check_size(rid, MAX_ID_BYTES, "registration id")
    if body.get("type") != TYPE:
        raise BadRequestData(f"type must be {TYPE}")
    if "information" not in body:
        raise BadRequestData("a context source registration needs information")
    if "endpoint" not in body:
        raise BadRequestData("a context source registration needs an endpoint")
    doc: dict[str, Any] = {"id": rid, "type": TYPE}
    doc["information"] = _information(body["information"], ctx)
    mode = body.get("mode", "inclusive")
    if mode not in MODES:
        raise BadRequestData(f"mode must be one of {', '.join(MODES)}")
    doc["mode"] = mode
    ops = body.get("operations", DEFAULT_OPERATIONS)
    if (
        not isinstance(ops, list)
        or not ops
        or not all(isinstance(o, str) and o in OPERATIONS for o in ops)
    ):
        raise BadRequestData("operations must be a non-empty list of NGSI-LD operation names")
    doc["operations"] = list(ops)
    for key in PLAIN:
        if key in body and body[key] is not None:
            doc[key] = _plain(key, body[key])
    props = {}
    for key, value in body.items():
        if key in RESERVED or key in SYSTEM or key in STATUS:
            continue
        if key.startswith("@"):
            raise BadRequestData(f"member {key!r} is not allowed in a registration")
        props[ctx.expand_term(key)] = value
    if props:
        doc[PROPS] = props
    now = now_iso()
    doc["createdAt"] = created_at or now
    doc["modifiedAt"] = now
    return doc


def merge_fragment(current: dict[str, Any], fragment: Any, ctx: Context) -> dict[str, Any]:
    """A registration updated with a fragment (clause 5.9.3): members replaced, ``null``
    removes an optional one; the result is checked as a whole (so removing a mandatory
    member is a 400)."""
    if not isinstance(fragment, dict) or not fragment:
        raise BadRequestData("a registration fragment must be a non-empty JSON object")
    if fragment.get("id", current["id"]) != current["id"]:
        raise BadRequestData("the id of a registration cannot change")
    if "type" in fragment and fragment["type"] != TYPE:
        raise BadRequestData(f"type must be {TYPE}")
    body = render_registration(current, ctx, redact=False)
    for key, value in fragment.items():
        if key == "@context":
            continue
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    if "expiresAt" in fragment and fragment["expiresAt"] is None:
        body.pop("expiresAt", None)
    return parse_registration(body, ctx, reg_id=current["id"], created_at=current["createdAt"])


def render_registration(
    doc: dict[str, Any], ctx: Context, *, sys_attrs: bool = False, redact: bool = True
) -> dict[str, Any]:
    """The registration compacted with ``ctx`` (no @context member); credentials in
    ``contextSourceInfo`` shown as :data:`REDACTED` unless ``redact`` is False."""
    out: dict[str, Any] = {"id": doc["id"], "type": TYPE}
    infos = []
    for info in doc["information"]:
        item: dict[str, Any] = {}
        if "entities" in info:
            item["entities"] = [
                {**{k: v for k, v in e.items() if k != "type"}, "type": ctx.compact_iri(e["type"])}
                for e in info["entities"]
            ]
        for key in ("propertyNames", "relationshipNames"):
            if key in info:
                item[key] = [ctx.compact_iri(n) for n in info[key]]
        infos.append(item)
    out["information"] = infos
    out["mode"] = doc.get("mode", "inclusive")
    out["operations"] = doc.get("operations", DEFAULT_OPERATIONS)
    for key in PLAIN:
        if key in doc:
            out[key] = doc[key]
    if redact and "contextSourceInfo" in doc:
        out["contextSourceInfo"] = [
            {**kv, "value": REDACTED} if kv["key"].lower() in SECRET_KEYS else kv
            for kv in doc["contextSourceInfo"]
        ]
    for key, value in doc.get(PROPS, {}).items():
        out[ctx.compact_iri(key)] = value
    for key in STATUS:
        if key in doc:
            out[key] = doc[key]
    if sys_attrs:
        out.update({k: doc[k] for k in SYSTEM if k in doc})
    return out


# ------------------------------------------------------------------------- discovery


@dataclass
class TemporalFilter:
    timerel: str  # before, after, between
    time_at: str
    end_time_at: str | None = None
    timeproperty: str = "observedAt"


@dataclass
class RegistrationFilter:
    """A discovery query (clause 5.10.2), every name expanded."""

    types: TypeExpr | None = None
    ids: list[str] | None = None
    id_pattern: str | None = None
    attrs: list[str] | None = None
    q: QExpr | None = None
    csf: QExpr | None = None
    geo: GeoQuery | None = None
    temporal: TemporalFilter | None = None


def _type_ok(types: TypeExpr | None, info_type: str) -> bool:
    return types is None or match_types({"type": [info_type]}, types)


def _ids_ok(f: RegistrationFilter, sel: dict[str, Any]) -> bool:
    """Whether the selector can hold an entity with one of the ids asked for."""
    if f.ids is not None:
        if "id" in sel and sel["id"] not in f.ids:
            return False
        if "id" not in sel and "idPattern" in sel:
            rx = client_regex(sel["idPattern"], "idPattern")
            if not any(rx.fullmatch(i) for i in f.ids):
                return False
    pattern_ok = (
        f.id_pattern is None
        or "id" not in sel
        or client_regex(f.id_pattern, "idPattern").fullmatch(sel["id"])
    )
    return bool(pattern_ok)


def info_matches(f: RegistrationFilter, info: dict[str, Any]) -> bool:
    asks_entities = f.types is not None or f.ids is not None or f.id_pattern is not None
    if (
        asks_entities
        and "entities" in info
        and not any(_type_ok(f.types, s["type"]) and _ids_ok(f, s) for s in info["entities"])
    ):
        return False
    if f.attrs:
        names = info.get("propertyNames", []) + info.get("relationshipNames", [])
        if names and not any(a in names for a in f.attrs):
            return False
    return True


def as_entity(doc: dict[str, Any]) -> Entity:
    """The registration's own members as an entity in stored form, for ``q`` and ``csf``."""
    attrs = {k: [{"type": "Property", "value": v}] for k, v in doc.get(PROPS, {}).items()}
    return {"id": doc["id"], "type": [TYPE], "attrs": attrs}


def _temporal_ok(t: TemporalFilter, doc: dict[str, Any]) -> bool:
    key = "observationInterval" if t.timeproperty == "observedAt" else "managementInterval"
    interval = doc.get(key)
    if interval is None:
        return True  # nothing said about time: the source may hold it
    start = to_hub_time(interval["startAt"])
    end = to_hub_time(interval["endAt"]) if "endAt" in interval else None
    if t.timerel == "before":
        return start < t.time_at
    if t.timerel == "after":
        return end is None or end > t.time_at
    return start < (t.end_time_at or t.time_at) and (end is None or end > t.time_at)


def matches(doc: dict[str, Any], f: RegistrationFilter) -> bool:
    """Whether a stored registration answers a discovery query (clause 5.12)."""
    if not any(info_matches(f, info) for info in doc["information"]):
        return False
    for expr in (f.q, f.csf):
        if expr is not None and not match_q(as_entity(doc), expr):
            return False
    if f.geo is not None:
        name = f.geo.geoproperty.rsplit("/", 1)[-1]
        geom = doc.get(name) if name in GEOMETRIES else None
        if geom is not None and not geo_match(geom, f.geo):
            return False
    return f.temporal is None or _temporal_ok(f.temporal, doc)


def expired(doc: dict[str, Any], now: str | None = None) -> bool:
    return "expiresAt" in doc and to_hub_time(doc["expiresAt"]) <= (now or now_iso())

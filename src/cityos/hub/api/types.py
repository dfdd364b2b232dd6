"""/types and /attributes: what the hub holds, computed from the entities (clause 5.7.5–5.7.10)."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from starlette.requests import Request
from starlette.responses import Response

from cityos.hub.access import listed, restrict_query
from cityos.hub.api.common import (
    endpoint,
    entity_response,
    flag,
    hub_of,
    path_param,
    resolve_context,
    response_media,
    tenant_of,
)
from cityos.hub.errors import ResourceNotFound
from cityos.hub.query.model import EntityQuery, TypeName
from cityos.hub.store.base import AttributeUse


def _list_id(kind: str, items: list[str]) -> str:
    digest = hashlib.sha1("\n".join(items).encode()).hexdigest()[:16]
    return f"urn:ngsi-ld:{kind}:{digest}"


def _uses(request: Request, *, attrs: bool = True) -> list[AttributeUse]:
    """What the caller may know of: the types it may query (``attrs``: and only the
    attributes it may read on each)."""
    uses = hub_of(request).store.attribute_uses(tenant_of(request, read=True))
    return [u for u in uses if listed(u.entity_type, u.attr if attrs else None)]


@endpoint
async def list_types(request: Request) -> Response:
    media = response_media(request)
    ctx = resolve_context(request)
    uses = _uses(request, attrs=False)
    types = sorted({u.entity_type for u in uses})
    if flag(request, "details"):
        attrs: dict[str, set[str]] = defaultdict(set)
        for u in uses:
            if listed(u.entity_type, u.attr):
                attrs[u.entity_type].add(u.attr)
        body = [
            {
                "id": t,
                "type": "EntityType",
                "typeName": ctx.compact_iri(t),
                "attributeNames": sorted(ctx.compact_iri(a) for a in attrs[t]),
            }
            for t in types
        ]
    else:
        names = [ctx.compact_iri(t) for t in types]
        body = {
            "id": _list_id("EntityTypeList", types),
            "type": "EntityTypeList",
            "typeList": names,
        }
    return entity_response(request, body, media)


@endpoint
async def type_info(request: Request) -> Response:
    media = response_media(request)
    ctx = resolve_context(request)
    iri = ctx.expand_term(path_param(request, "type"))
    tenant = tenant_of(request, read=True)
    query = restrict_query(EntityQuery(types=TypeName(iri), limit=0, count=True))
    res = hub_of(request).store.query(tenant, query)
    if not res.count or not listed(iri):  # a type the caller may not query: as if absent
        raise ResourceNotFound(f"no entity of type {request.path_params['type']}")
    kinds: dict[str, set[str]] = defaultdict(set)
    for u in _uses(request):
        if u.entity_type == iri:
            kinds[u.attr].add(u.attr_type)
    body = {
        "id": iri,
        "type": "EntityTypeInfo",  # clause 5.2.26; the core @context term
        "typeName": ctx.compact_iri(iri),
        "entityCount": res.count,
        "attributeDetails": [
            {
                "id": a,
                "type": "Attribute",
                "attributeName": ctx.compact_iri(a),
                "attributeTypes": sorted(kinds[a]),
            }
            for a in sorted(kinds)
        ],
    }
    return entity_response(request, body, media)


@endpoint
async def list_attributes(request: Request) -> Response:
    media = response_media(request)
    ctx = resolve_context(request)
    uses = _uses(request)
    attrs = sorted({u.attr for u in uses})
    if flag(request, "details"):
        types: dict[str, set[str]] = defaultdict(set)
        for u in uses:
            types[u.attr].add(u.entity_type)
        body = [
            {
                "id": a,
                "type": "Attribute",
                "attributeName": ctx.compact_iri(a),
                "typeNames": sorted(ctx.compact_iri(t) for t in types[a]),
            }
            for a in attrs
        ]
    else:
        body = {
            "id": _list_id("AttributeList", attrs),
            "type": "AttributeList",
            "attributeList": [ctx.compact_iri(a) for a in attrs],
        }
    return entity_response(request, body, media)


@endpoint
async def attribute_info(request: Request) -> Response:
    media = response_media(request)
    ctx = resolve_context(request)
    iri = ctx.expand_term(path_param(request, "attr"))
    uses = [u for u in _uses(request) if u.attr == iri]
    if not uses:
        raise ResourceNotFound(f"no entity has attribute {request.path_params['attr']}")
    body = {
        "id": iri,
        "type": "Attribute",
        "attributeName": ctx.compact_iri(iri),
        "attributeCount": sum(u.entity_count for u in uses),
        "attributeTypes": sorted({u.attr_type for u in uses}),
        "typeNames": sorted({ctx.compact_iri(u.entity_type) for u in uses}),
    }
    return entity_response(request, body, media)

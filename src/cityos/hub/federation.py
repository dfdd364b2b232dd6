"""Federation: entity queries answered with the entities of registered context sources too.

A registration (clause 5.9, any mode; :mod:`cityos.hub.csources`) of another broker —
a city department's, or a second CityOS — whose ``operations`` allow queries makes
``GET /entities``, ``GET /entities/{id}`` and ``POST /entityOperations/query`` of the
registration's tenant ask that broker too (clause 5.7.2 and 4.3.6.1):

* only registrations whose ``information`` can hold what is asked, and whose
  ``operations`` allow the read, are used: a query goes as queryEntity (the peer is sent
  the entity types, ids, ``idPattern`` and attributes, as full IRIs: no @context needed),
  a retrieval by id as retrieveEntity (``GET /entities/{id}``), else as a query by id;
  every filter of the caller's query — restricted to its grant — is applied again here to
  what comes back, as is the caller's attribute-level view (:mod:`access`);
* the registration's ``tenant`` becomes ``NGSILD-Tenant`` at the peer, its
  ``contextSourceInfo`` key-values become request headers (an API key for the peer);
* a ``Via`` header names every hub on the way: a hub that finds itself in it, or a chain
  longer than :data:`MAX_HOPS`, answers from its own data only (loop protection);
* each peer has the notification timeout; one that fails or times out is logged (once per
  change) and left out — the local answer never fails because of a peer.

Merging: an entity both here and at a peer gains the peer's other attributes; where both
hold one, the registration's mode decides (:func:`owned`). Entities only at the peer
follow the local page, up to ``limit``. Counts (``NGSILD-Results-Count``) are the local
ones. Writes are not forwarded.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Iterable
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from starlette.requests import Request

from cityos.hub import csources
from cityos.hub.access import visible
from cityos.hub.core import Hub
from cityos.hub.errors import NgsiLdError
from cityos.hub.model import Entity
from cityos.hub.netguard import AsyncGuardedTransport, DestinationError
from cityos.hub.query.evaluate import match_query, match_types
from cityos.hub.query.model import EntityQuery, TypeAnd, TypeExpr, TypeName, TypeOr
from cityos.hub.representation import parse_entity

log = logging.getLogger("cityos.hub.federation")

HUB_TOKEN = f"cityos-{uuid.uuid4().hex[:12]}"  # this process in Via headers
MAX_HOPS = 3
# headers a contextSourceInfo item may not set (the hub sets or forbids them)
_RESERVED_HEADERS = {"host", "content-length", "via", "ngsild-tenant", "transfer-encoding"}
_failing: set[str] = set()  # registrations logged as failing (log once per change)


def _via(request: Request) -> list[str]:
    raw = request.headers.get("via", "")
    return [hop.strip() for hop in raw.split(",") if hop.strip()]


def _asks_no_source(request: Request) -> bool:
    """No source is asked: the caller said ``local=true`` (clause 6.3.18: this hub's own
    entities only), or (loop protection) this hub is already on the way, or the chain is
    long enough."""
    if request.query_params.get("local", "").lower() == "true":
        return True
    via = _via(request)
    return len(via) >= MAX_HOPS or any(HUB_TOKEN in hop for hop in via)


def _peer_client(hub: Hub) -> httpx.AsyncClient:
    """A client for the sources: the notification timeout, through the SSRF guard."""
    settings = hub.settings
    return httpx.AsyncClient(
        timeout=settings.notify_timeout_s,
        transport=AsyncGuardedTransport(allow_private=settings.notify_private_allowed()),
    )


def _type_names(texpr: TypeExpr | None) -> list[str]:
    if texpr is None:
        return []
    if isinstance(texpr, TypeName):
        return [texpr.name]
    if isinstance(texpr, TypeAnd | TypeOr):
        return [n for t in texpr.items for n in _type_names(t)]
    return []


def _sources(
    hub: Hub,
    tenant: str,
    query: EntityQuery,
    operations: frozenset[str] = csources.QUERY_OPERATIONS,
) -> list[tuple[dict[str, Any], list[str]]]:
    """The registrations to ask (that allow one of ``operations``: one read of the store
    for any number of them), each with the entity types to ask it for."""
    f = csources.RegistrationFilter(
        types=query.types, ids=query.ids, id_pattern=query.id_pattern, attrs=query.attrs
    )
    out = []
    for reg in hub.store.list_docs(csources.KIND, tenant):
        if csources.expired(reg):
            continue
        if not operations & set(reg.get("operations", ())):
            continue
        if not csources.matches(reg, f):
            continue
        types = sorted(
            {
                sel["type"]
                for info in reg["information"]
                for sel in info.get("entities", ())
                if query.types is None or match_types({"type": [sel["type"]]}, query.types)
            }
            | set(_type_names(query.types))
        )
        if types or query.attrs or query.ids:
            out.append((reg, types))
    return sorted(out, key=lambda x: x[0]["createdAt"])


def _headers(request: Request, reg: dict[str, Any]) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    for info in reg.get("contextSourceInfo", ()):
        if info["key"].lower() not in _RESERVED_HEADERS:
            headers[info["key"]] = info["value"]
    if reg.get("tenant"):
        headers["NGSILD-Tenant"] = reg["tenant"]
    headers["Via"] = ", ".join([*_via(request), f"1.1 {HUB_TOKEN}"])
    return headers


async def _ask(
    hub: Hub, client: httpx.AsyncClient, request: Request, reg: dict[str, Any], params: list
) -> list[Entity]:
    url = reg["endpoint"].rstrip("/") + "/ngsi-ld/v1/entities"
    try:
        r = await client.get(url, params=params, headers=_headers(request, reg))
        if r.status_code != 200:
            raise ValueError(f"HTTP {r.status_code}")
        body = orjson.loads(r.content)
        if not isinstance(body, list):
            raise ValueError("the answer is not a list of entities")
        core = hub.contexts.resolve(None)
        entities = [parse_entity(e, core) for e in body if isinstance(e, dict)]
    except (DestinationError, httpx.HTTPError, ValueError, NgsiLdError) as exc:
        _left_out(reg, url, exc)
        return []
    _answers_again(reg)
    return entities


def _left_out(reg: dict[str, Any], url: str, exc: Exception) -> None:
    if reg["id"] not in _failing:
        _failing.add(reg["id"])
        log.warning("context source %s (%s) left out: %s", reg["id"], url, exc)


def _answers_again(reg: dict[str, Any]) -> None:
    if reg["id"] in _failing:
        _failing.discard(reg["id"])
        log.info("context source %s answers again", reg["id"])


def _forwarded(query: EntityQuery, types: list[str], limit: int) -> list[tuple[str, str]]:
    params = [("limit", str(limit))]
    if types:
        params.append(("type", ",".join(types)))
    if query.ids:
        params.append(("id", ",".join(query.ids)))
    if query.id_pattern:
        params.append(("idPattern", query.id_pattern))
    if query.attrs:
        params.append(("attrs", ",".join(query.attrs)))
    return params


Remote = list[tuple[Entity, frozenset[str] | None]]  # an entity, and what of it its source owns


def owned(reg: dict[str, Any]) -> frozenset[str] | None:
    """The attributes a registration's source answers for over what is stored here (clause
    5.9.2, the registration modes): all of them for ``redirect`` (None: the entities live
    there), the registered ones for ``exclusive`` (all when it names none), none for
    ``inclusive`` and ``auxiliary`` (the source adds only what is not stored here)."""
    mode = reg.get("mode", "inclusive")
    if mode == "redirect":
        return None
    if mode == "exclusive":
        names = {
            n
            for info in reg["information"]
            for key in ("propertyNames", "relationshipNames")
            for n in info.get(key, ())
        }
        return frozenset(names) if names else None
    return frozenset()


async def remote_entities(request: Request, tenant: str, query: EntityQuery) -> Remote:
    """The entities registered sources hold for ``query`` (stored form, filtered here by
    every condition of the query and the caller's grant), each with what of it its source
    owns; [] when none is registered."""
    hub: Hub = request.app.state.hub
    if _asks_no_source(request):
        return []
    sources = _sources(hub, tenant, query)
    if not sources:
        return []
    limit = min(query.offset + query.limit, hub.settings.max_page_size) or 1
    async with _peer_client(hub) as client:
        answers = await asyncio.gather(
            *(
                _ask(hub, client, request, reg, _forwarded(query, types, limit))
                for reg, types in sources
            )
        )
    return _seen(
        (e, owned(reg))
        for (reg, _), batch in zip(sources, answers, strict=True)
        for e in batch
        if match_query(e, query)
    )


def _seen(found: Iterable[tuple[Entity, frozenset[str] | None]]) -> Remote:
    """What of the sources' answers the caller may see (its grant, here as at home)."""
    out: Remote = []
    for entity, mine in found:
        shown = visible(entity)
        if shown is not None:
            out.append((shown, mine))
    return out


def merge(local: list[Entity], remote: Remote, limit: int) -> list[Entity]:
    """Local entities first, then the sources'. An entity both here and at a source gains
    the source's other attributes, and takes from it those the source owns (:func:`owned`:
    a redirect or exclusive registration's) over what is stored here."""
    by_id = {e["id"]: e for e in local}
    extra: list[Entity] = []
    for ent, mine in remote:
        here = by_id.get(ent["id"])
        if here is None:
            by_id[ent["id"]] = ent
            extra.append(ent)
            continue
        attrs = here.setdefault("attrs", {})
        for name, instances in ent.get("attrs", {}).items():
            if mine is None or name in mine:
                attrs[name] = instances
            else:
                attrs.setdefault(name, instances)
    return local + extra[: max(0, limit - len(local))]


async def include(
    request: Request, tenant: str, query: EntityQuery, local: list[Entity]
) -> list[Entity]:
    """``local`` with what registered context sources add (the query handlers' hook)."""
    if query.limit == 0:
        return local
    remote = await remote_entities(request, tenant, query)
    return merge(local, remote, query.limit) if remote else local


async def include_one(
    request: Request, tenant: str, entity_id: str, local: Entity | None
) -> Entity | None:
    """The entity as here and at registered context sources (the retrieve handler's hook).

    A source whose registration allows retrieveEntity is asked ``GET /entities/{id}`` (the
    operation the caller asked for, clause 4.3.6.2; a source may offer nothing else); one
    that allows queryEntity only, a query by id. What comes back must be the entity asked
    for, of a type the registration names, and visible to the caller."""
    if _asks_no_source(request):
        return local
    hub: Hub = request.app.state.hub
    query = EntityQuery(ids=[entity_id], limit=1)
    readable = csources.RETRIEVE_OPERATIONS | csources.QUERY_OPERATIONS
    sources = _sources(hub, tenant, query, readable)
    if not sources:
        return local

    def ask(reg: dict[str, Any], types: list[str]) -> Awaitable[list[Entity]]:
        if csources.RETRIEVE_OPERATIONS & set(reg.get("operations", ())):
            return _retrieve(hub, client, request, reg, entity_id)
        return _ask(hub, client, request, reg, _forwarded(query, types, 1))

    async with _peer_client(hub) as client:
        answers = await asyncio.gather(*(ask(reg, types) for reg, types in sources))
    remote = _seen(
        (e, owned(reg))
        for (reg, _), batch in zip(sources, answers, strict=True)
        for e in batch
        if e["id"] == entity_id
    )
    found = merge([local] if local else [], remote, 1)
    return found[0] if found else None


async def _retrieve(
    hub: Hub, client: httpx.AsyncClient, request: Request, reg: dict[str, Any], entity_id: str
) -> list[Entity]:
    """``GET /entities/{id}`` at the source: [the entity], or [] (404, or left out)."""
    url = reg["endpoint"].rstrip("/") + "/ngsi-ld/v1/entities/" + quote(entity_id, safe=":")
    named = {sel["type"] for info in reg["information"] for sel in info.get("entities", ())}
    try:
        r = await client.get(url, headers=_headers(request, reg))
        if r.status_code == 404:
            return []  # not there: an answer, not a failure
        if r.status_code != 200:
            raise ValueError(f"HTTP {r.status_code}")
        body = orjson.loads(r.content)
        if not isinstance(body, dict):
            raise ValueError("the answer is not an entity")
        entity = parse_entity(body, hub.contexts.resolve(None))
    except (DestinationError, httpx.HTTPError, ValueError, NgsiLdError) as exc:
        _left_out(reg, url, exc)
        return []
    _answers_again(reg)
    if named and not set(entity["type"]) & named:
        return []  # not of a type the source registered for
    return [entity]

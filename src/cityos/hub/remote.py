"""HttpHubClient: the HubClient's methods over NGSI-LD HTTP, for a service in its own process.

A service written against :class:`cityos.hub.client.HubClient` runs unchanged against a
remote hub (a ``cityos serve`` elsewhere, or any NGSI-LD broker) with this client: the same
methods and signatures, the same compacted NGSI-LD in and out, and the hub's problem
details raised as the same :mod:`cityos.hub.errors` exceptions. Subscriptions go to a small
local HTTP endpoint (:mod:`cityos.hub.notify_endpoint`) that calls the receiver.

The ``@context`` travels as NGSI-LD says: a URL in a ``Link`` header; an inline context
(a dict or list) inside ``application/ld+json`` bodies, so reads then go through
``POST /entityOperations/query``, which carries a body.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from cityos.hub import errors
from cityos.hub.client import Receiver
from cityos.hub.errors import NgsiLdError, NonexistentTenant, ResourceNotFound
from cityos.hub.notify_endpoint import NotifyEndpoint
from cityos.hub.representation.render import FORMATS

API = "/ngsi-ld/v1"
JSONLD = "application/ld+json"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
# characters left as they are in an id put in a path (the rest is percent-encoded)
_ID_SAFE = ":@!$&'()*+,;=~"


def _error_classes() -> dict[tuple[str, int], type[NgsiLdError]]:
    """(problem type URI, status) -> the exception the in-process hub raises for it; the
    first class defined in cityos.hub.errors wins (subclasses elsewhere share its type)."""
    found: dict[tuple[str, int], type[NgsiLdError]] = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, NgsiLdError):
            found.setdefault((value("").type_uri, value.status), value)
    return found


ERROR_CLASSES = _error_classes()


def error_from_problem(status: int, body: Any) -> NgsiLdError:
    """The exception for an NGSI-LD problem-details answer (RFC 7807)."""
    problem = body if isinstance(body, dict) else {}
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    status = int(problem.get("status") or status)
    cls = ERROR_CLASSES.get((str(problem.get("type", "")), status))
    if cls is None:
        return NgsiLdError(detail, status=status)
    return cls(detail)


@dataclass
class _Shared:
    """What a client and its ``for_tenant`` siblings share: one connection pool, one
    notification endpoint, and the subscriptions they made (deleted on close)."""

    http: httpx.Client
    notify_host: str
    notify_port: int
    endpoint: NotifyEndpoint | None = None
    subscriptions: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def notify_endpoint(self) -> NotifyEndpoint:
        with self.lock:
            if self.endpoint is None:
                self.endpoint = NotifyEndpoint(self.notify_host, self.notify_port)
            return self.endpoint


class HttpHubClient:
    """A HubClient whose hub is at ``base_url`` (e.g. ``http://127.0.0.1:8000``).

    ``headers`` go with every request (an API key, ``Authorization: Bearer ...``).
    ``notify_host``/``notify_port`` are where the notification endpoint listens and what the
    hub is told to call: the defaults suit a hub on this machine; for a hub elsewhere, give
    an address of this machine that the hub can reach. ``page_size`` is the most entities
    asked for in one request (the hub's max_page_size); ``query`` pages past it.
    Close it (or use it as a context manager) to delete its subscriptions and stop the
    endpoint; the clients ``for_tenant`` returns share both with it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        context: Any = None,
        tenant: str = "",
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        notify_host: str = "127.0.0.1",
        notify_port: int = 0,
        page_size: int = 1000,
        _shared: _Shared | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix(API)
        self.context = context
        self.tenant = tenant
        self.page_size = page_size
        self._shared = _shared or _Shared(
            httpx.Client(base_url=self.base_url + API, headers=headers, timeout=timeout),
            notify_host,
            notify_port,
        )

    def for_tenant(self, tenant: str) -> HttpHubClient:
        """The same client, speaking for another tenant."""
        return self._sibling(context=self.context, tenant=tenant)

    def for_context(self, context: Any) -> HttpHubClient:
        """The same client, speaking in another ``@context`` (a URL, or a context object)."""
        return self._sibling(context=context, tenant=self.tenant)

    def _sibling(self, *, context: Any, tenant: str) -> HttpHubClient:
        return HttpHubClient(
            self.base_url,
            context=context,
            tenant=tenant,
            page_size=self.page_size,
            _shared=self._shared,
        )

    # -- entities ---------------------------------------------------------------------
    def create(self, entity: dict[str, Any]) -> None:
        self._request("POST", "/entities", body=entity)

    def upsert(self, entities: list[dict[str, Any]], *, replace: bool = True) -> list[str]:
        """Create, or replace (``replace=False``: update, keeping other attributes); the
        ids created. An entity the hub refuses raises its error (the others are written)."""
        if not entities:  # the hub refuses an empty batch; in process it writes nothing
            return []
        params = {} if replace else {"options": "update"}
        r = self._request("POST", "/entityOperations/upsert", body=entities, params=params)
        if r.status_code == 207:
            first = r.json()["errors"][0]["error"]
            raise error_from_problem(int(first.get("status", 400)), first)
        return r.json() if r.status_code == 201 else []

    def update_attrs(self, entity_id: str, attrs: dict[str, Any]) -> None:
        self._request(
            "POST", f"/entities/{_path_id(entity_id)}/attrs", body=attrs, tenant_read=True
        )

    def delete(self, entity_id: str, *, history: bool = False) -> None:
        """``DELETE /entities/{id}``, or with ``history`` ``DELETE /temporal/entities/{id}``."""
        prefix = "/temporal/entities/" if history else "/entities/"
        self._request("DELETE", prefix + _path_id(entity_id), tenant_read=True)

    def history(
        self,
        entity_id: str,
        attr: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100_000,
    ) -> list[tuple[str, Any]]:
        """``(observedAt, value)`` of one attribute's past instances, oldest first, read
        through ``GET /temporal/entities/{id}`` page by page (206 answers continue after
        the last instance seen)."""
        out: dict[str, Any] = {}
        start = after
        while len(out) < limit:
            window: dict[str, Any] = {"timeproperty": "observedAt"}
            if start and before:
                window |= {"timerel": "between", "timeAt": start, "endTimeAt": before}
            elif start:
                window |= {"timerel": "after", "timeAt": start}
            elif before:
                window |= {"timerel": "before", "timeAt": before}
            if self._inline_context:  # the terms travel in the body: the POST form
                body: dict[str, Any] = {
                    "type": "Query",
                    "entities": [{"id": entity_id}],
                    "attrs": [attr],
                }
                if "timerel" in window:
                    body["temporalQ"] = window
                r = self._request("POST", "/temporal/entityOperations/query", body=body)
                found = [_without_context(e) for e in r.json()]
                if not found:
                    raise ResourceNotFound(f"entity {entity_id} not found")
                answer = found[0]
            else:
                r = self._request(
                    "GET",
                    f"/temporal/entities/{_path_id(entity_id)}",
                    params={"attrs": attr, **window},
                    tenant_read=True,
                )
                answer = _without_context(r.json())
            instances = answer.get(attr) or []
            instances = instances if isinstance(instances, list) else [instances]
            new = {
                i["observedAt"]: i.get("value")
                for i in instances
                if "observedAt" in i and i["observedAt"] not in out
            }
            out.update(new)
            if r.status_code != 206 or not new:
                break
            start = max(new)
        return sorted(out.items())[:limit]

    def get(self, entity_id: str, *, fmt: str = "normalized") -> dict[str, Any]:
        if self._inline_context:
            found = self._query({"entities": [{"id": entity_id}]}, limit=1, offset=0, fmt=fmt)
            if not found:
                raise ResourceNotFound(f"entity {entity_id} not found")
            return found[0]
        r = self._request(
            "GET", f"/entities/{_path_id(entity_id)}", params=_fmt(fmt), tenant_read=True
        )
        return _without_context(r.json())

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
        of them), ``limit``/``offset`` a page."""
        body = _query_body(type, q)
        extra: dict[str, str] = {}
        if attrs:
            body["attrs"] = attrs  # the filter; the parameter below projects
            extra["attrs"] = ",".join(attrs)
        return self._query(body, limit=limit, offset=offset, fmt=fmt, extra=extra)

    def count(self, *, type: str | None = None, q: str | None = None) -> int:
        """How many entities match (``NGSILD-Results-Count``)."""
        try:
            r = self._request(
                "POST",
                "/entityOperations/query",
                body={"type": "Query", **_query_body(type, q)},
                params={"limit": 0, "count": "true"},
            )
        except NonexistentTenant:
            return 0
        return int(r.headers.get("NGSILD-Results-Count", 0))

    def _query(
        self,
        body: dict[str, Any],
        *,
        limit: int,
        offset: int,
        fmt: str,
        extra: dict[str, str] | None = None,
    ) -> list[Any]:
        """POST /entityOperations/query (it needs no filter, and carries an inline
        @context), a page of at most ``page_size`` at a time until ``limit``."""
        out: list[Any] = []
        while len(out) < limit:
            size = min(self.page_size, limit - len(out))
            params = {"limit": size, "offset": offset + len(out), **_fmt(fmt), **(extra or {})}
            try:
                r = self._request(
                    "POST",
                    "/entityOperations/query",
                    body={"type": "Query", **body},
                    params=params,
                )
            except NonexistentTenant:  # in process: a tenant holding nothing is empty
                return out
            page = [_without_context(e) for e in r.json()]
            out += page
            if len(page) < size:
                break
        return out

    # -- delivery -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def delivery(
        self, *, allow_private: bool = False
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """As in process, for code that runs no server; but a remote hub delivers with its
        own worker, so ``flush()`` has nothing to do here and returns at once (receivers are
        called when the hub's notifications arrive). ``allow_private`` is the hub's setting
        (notify_allow_private), not the client's."""

        async def flush() -> None:
            return None

        yield flush

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
        """Call ``receiver(notification)`` for every matching change; the subscription id.
        The receiver runs in the notification endpoint's thread."""
        endpoint = self._shared.notify_endpoint()
        name = uuid.uuid4().hex
        sub_id = f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
        body: dict[str, Any] = {
            "id": sub_id,
            "type": "Subscription",
            "notification": {
                "endpoint": {"uri": endpoint.url(name), "accept": "application/json"},
                "format": fmt,
            },
        }
        if entity_type:
            body["entities"] = [{"type": entity_type}]
        if watched_attributes:
            body["watchedAttributes"] = watched_attributes
        if q:
            body["q"] = q
        if attributes:
            body["notification"]["attributes"] = attributes
        endpoint.receivers[name] = receiver
        try:
            self._request("POST", "/subscriptions", body=body)
        except BaseException:
            endpoint.receivers.pop(name, None)
            raise
        self._shared.subscriptions[(self.tenant, sub_id)] = name
        return sub_id

    def unsubscribe(self, sub_id: str) -> None:
        self._request("DELETE", f"/subscriptions/{_path_id(sub_id)}", tenant_read=True)
        name = self._shared.subscriptions.pop((self.tenant, sub_id), None)
        if name is not None and self._shared.endpoint is not None:
            self._shared.endpoint.receivers.pop(name, None)

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Delete the subscriptions made through this client (and its tenant siblings),
        stop the notification endpoint, close the connections."""
        shared = self._shared
        for tenant, sub_id in list(shared.subscriptions):
            try:
                self.for_tenant(tenant).unsubscribe(sub_id)
            except (NgsiLdError, httpx.HTTPError):
                shared.subscriptions.pop((tenant, sub_id), None)  # gone already, or unreachable
        if shared.endpoint is not None:
            shared.endpoint.close()
            shared.endpoint = None
        shared.http.close()

    def __enter__(self) -> HttpHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire -----------------------------------------------------------------------
    @property
    def _inline_context(self) -> bool:
        return isinstance(self.context, dict | list)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        tenant_read: bool = False,
    ) -> httpx.Response:
        """Send one request with the tenant and @context; a problem answer raised as its
        NgsiLdError (a read in a tenant that holds nothing: ResourceNotFound, as in process)."""
        headers: dict[str, str] = {"Accept": "application/json"}
        if self.tenant:
            headers["NGSILD-Tenant"] = self.tenant
        content = None
        if body is not None:
            if self._inline_context:
                headers["Content-Type"] = JSONLD
                body = _with_context(body, self.context)
            else:
                headers["Content-Type"] = "application/json"
            content = orjson.dumps(body)
        if isinstance(self.context, str):
            headers["Link"] = f"<{self.context}>; {LINK_REL}"
        r = self._shared.http.request(method, path, content=content, params=params, headers=headers)
        if r.status_code >= 400:
            try:
                problem = r.json()
            except ValueError:
                problem = {"detail": r.text[:200] or r.reason_phrase}
            err = error_from_problem(r.status_code, problem)
            if tenant_read and isinstance(err, NonexistentTenant):
                raise ResourceNotFound(err.detail) from err
            raise err
        return r


def _query_body(type: str | None, q: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if type is not None:
        body["entities"] = [{"type": type}]
    if q is not None:
        body["q"] = q
    return body


def _path_id(ident: str) -> str:
    return quote(ident, safe=_ID_SAFE)


def _fmt(fmt: str) -> dict[str, str]:
    if fmt not in FORMATS:  # as render_entity in process
        raise ValueError(f"unknown representation {fmt!r}")
    return {} if fmt == "normalized" else {"options": fmt}


def _with_context(body: Any, context: Any) -> Any:
    if isinstance(body, list):
        return [{**item, "@context": context} for item in body]
    return {**body, "@context": context}


def _without_context(entity: Any) -> Any:
    if isinstance(entity, dict):
        entity.pop("@context", None)
    return entity

"""The door: every request is authenticated, bound to its tenants and checked against the
roles' rules before any handler runs (when ``CITYOS_AUTH_REQUIRED`` is on).

What is checked here is the *route*: who the caller is (401 otherwise), that the tenant the
request names is one of the principal's (403), and that some rule of the principal's roles
grants the route's action in that tenant (403). What is checked inside the handlers is the
*data*: which entity types, ids and attributes (see :mod:`cityos.security.policy`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from cityos.hub.core import Hub
from cityos.hub.errors import NgsiLdError, problem_media
from cityos.hub.ldcontext import core_context
from cityos.hub.model import now_iso
from cityos.hub.tenancy import TENANT_HEADERS, TenantConflict, decide_tenant, tenant_of_headers
from cityos.security.audit import AuditLog
from cityos.security.detect import Detector, cause_of, refused  # detection
from cityos.security.identity import authenticator, credentials_of
from cityos.security.policy import (
    EXAMPLE_ROLES,
    Policy,
    PolicyError,
    read_rules,
    with_part_roles,
)
from cityos.security.principal import AuthError, Principal
from cityos.security.scope import Forbidden, as_caller, as_hub

log = logging.getLogger("cityos.security.guard")

# Reachable without credentials: liveness, the API description, getting a token, the
# dashboard's empty shell.
OPEN_PATHS = frozenset(
    {
        "/health",
        "/version",
        "/openapi.json",
        "/auth/token",
        "/auth/jwks.json",
        # the dashboard's shell and assets (cityos.web.dashboard): no data, only a page that
        # asks who you are; its data comes through /ui/api/, behind this door
        "/",
        "/ui/app.js",
        "/ui/app.css",
    }
)


# A device's own messages: measures and command results (exact paths: ``/iot/devices``
# also starts with ``/iot/d``, and provisioning is administration).
DEVICE_MESSAGE_PATHS = frozenset({"/iot/d", "/iot/json", "/iot/json/commands"})


def is_device_message(method: str, path: str) -> bool:
    return method == "POST" and path in DEVICE_MESSAGE_PATHS


def action_of(method: str, path: str, query: str) -> str:
    """The policy action a route performs."""
    if is_device_message(method, path):
        return "write"  # device measures (the device key's own check comes first)
    if path.startswith("/ui/api/"):
        # the dashboard's API: pages drawn, and a page's form answered (POST), which
        # computes from the submitted values and reads the hub under the viewer's grant,
        # never writing (cityos.plug.Page.answer)
        return "read"
    if path.startswith(("/iot/", "/audit")):
        return "administer"  # provisioning, service groups (their API keys), the audit log
    if path.startswith("/ngsi-ld/v1/csourceSubscriptions"):
        return "administer"  # an operator's tool; they hold endpoints and their credentials
    if path.startswith(("/ngsi-ld/v1/jsonldContexts", "/ngsi-ld/v1/csourceRegistrations")):
        # hosted @contexts; context source registrations (a registration makes the hub
        # send queries, with the source's credentials, to its endpoint)
        return "read" if method in ("GET", "HEAD") else "administer"
    if "/subscriptions" in path:
        return "subscribe"
    if path.endswith("/entityOperations/query") or method in ("GET", "HEAD"):
        if "/temporal/" in path and "aggrMethods" in parse_qs(query):
            return "aggregate"  # the temporal reads, by URL or by a POSTed query
        return "read"
    if method == "DELETE" or path.endswith("/entityOperations/delete"):
        return "delete"
    return "write"


class Guard:
    """Pure ASGI middleware in front of the whole app."""

    def __init__(
        self,
        app: ASGIApp,
        hub: Hub,
        policy: Policy,
        audit: AuditRecorder | None = None,
        detector: Detector | None = None,  # detection: fed every outcome, never waited on
    ) -> None:
        self.app = app
        self.hub = hub
        self.policy = policy
        self.audit = audit
        self.detector = detector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.hub.settings.auth_required:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS:
            if path == "/auth/token" and self.detector is not None:  # detection: bad logins
                send = self._observing(scope, None, send)
            await self.app(scope, receive, send)
            return
        authorization, api_key, named = _read_headers(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        action = action_of(scope["method"], path, query)
        tenant = named[0] if named else ""  # until decided: what the audit records
        try:
            # from memory when it can (microseconds); a signature check, a registry read or
            # a JWKS fetch goes to a thread, never blocking the event loop
            auth = authenticator(self.hub.settings, self.hub.store)
            creds = credentials_of(authorization, api_key)
            found = auth.cached_of(creds)
            if found is None:
                found = await asyncio.to_thread(auth.verify, creds)
            if found is not None:  # (without a credential the answer is 401 whatever it names)
                tenant = _decide_tenant(found, named)
                if not named:  # a device sends no header: its credential's own tenant
                    tenant = _device_home(found, scope) or tenant
            principal = self.check(scope, found, tenant, action)
        except NgsiLdError as err:
            tenant = getattr(err, "tenant", tenant)
            self._record(scope, None, "denied", err.status, tenant, action)
            if self.detector is not None:  # detection: the refusal and why
                who = getattr(err, "principal", None)
                self._observe(scope, who, err.status, tenant, cause_of(err))
            await _problem(send, err, Headers(scope=scope).get("accept"))
            return
        state = scope.setdefault("state", {})
        state["principal"], state["tenant"] = principal, tenant
        if principal.kind == "device" and self._as_device(scope, principal, tenant):
            # a device's own message: the IoT agent writes only what its provisioning maps
            # (cityos.devices.agent), as the hub's own work
            as_hub()
        else:
            as_caller(principal, tenant, self.policy)  # the data's rules (scope.py)
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            if self.detector is not None:  # detection: every request's outcome
                send = self._observing(scope, principal, send, tenant)
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:  # every write (or attempt) is audited with what came of it
            outcome = "ok" if status < 400 else "refused"
            self._record(scope, principal, outcome, status, tenant, action)
            if self.detector is not None:  # detection
                self._observe(scope, principal, status, tenant)

    # detection: an outcome reported to the detector (a queue append), or as it goes out
    def _observe(
        self,
        scope: Scope,
        principal: Principal | None,
        status: int,
        tenant: str,
        cause: str | None = None,
    ) -> None:
        assert self.detector is not None
        self.detector.observe_request(
            _client(scope),
            principal.subject if principal else None,
            tenant,
            scope["method"],
            scope["path"],
            status,
            cause=cause,
            home_tenants=principal.tenants if principal else (),
        )

    def _observing(
        self, scope: Scope, principal: Principal | None, send: Send, tenant: str = ""
    ) -> Send:
        async def observed(message: Any) -> None:
            if message["type"] == "http.response.start":
                self._observe(scope, principal, message["status"], tenant)
            await send(message)

        return observed

    def _record(
        self,
        scope: Scope,
        principal: Principal | None,
        outcome: str,
        status: int,
        tenant: str,
        action: str,
    ) -> None:
        if self.audit is None:
            return
        self.audit.add(
            {
                "actor": principal.subject if principal else _client(scope),
                "tenant": tenant,
                "action": action,
                "target": f"{scope['method']} {scope['path']}",
                "outcome": outcome,
                "status": status,
            }
        )

    def check(
        self,
        scope: Scope,
        principal: Principal | None,
        tenant: str | None = None,
        action: str | None = None,
    ) -> Principal:
        """The tenant and the route's action for an authenticated (or None) principal."""
        if principal is None:
            raise AuthError("credentials required: Authorization: Bearer <token>", error=None)
        if tenant is None:
            tenant = tenant_of_headers(scope["headers"])
        if not principal.in_tenant(tenant):
            raise refused(  # detection: a valid credential presented outside its tenants
                Forbidden(f"{principal.subject} may not act in tenant {tenant or '(default)'}"),
                principal,
                "tenant",
            )
        method = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        if action is None:
            action = action_of(method, scope["path"], query)
        if self._as_device(scope, principal, tenant):
            return principal
        if not self.policy.may_act(principal.roles, tenant, action):
            raise refused(  # detection: who was refused
                Forbidden(
                    f"no rule of role(s) {', '.join(sorted(principal.roles)) or '(none)'}"
                    f" allows {action} in tenant {tenant or '(default)'}"
                ),
                principal,
                "policy",
            )
        return principal

    @staticmethod
    def _as_device(scope: Scope, principal: Principal, tenant: str) -> bool:
        """Whether this is a device message its credential may send as that device (a
        device key of the message's service group, or a platform operator replaying)."""
        if not is_device_message(scope["method"], scope["path"]):
            return False
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        apikey, device = params.get("k", [""])[0], params.get("i", [""])[0]
        return principal.may_send_as_device(tenant, apikey, device)


class AuditRecorder:
    """Audit records queued by requests and appended in batches (one transaction each) by
    a background task, so a write pays microseconds, not an append of its own. A crash can
    lose the last ``interval_s`` of records (docs/security.md)."""

    def __init__(self, log_: AuditLog, interval_s: float = 0.2) -> None:
        self.log = log_
        self.interval_s = interval_s
        self._queue: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        record["time"] = now_iso()
        self._queue.append(record)

    def flush(self) -> int:
        batch, self._queue = self._queue, []
        if batch:
            try:
                self.log.append_many(batch)
            except Exception:
                self._queue[:0] = batch  # kept, in order, for the next try
                raise
        return len(batch)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.flush)
            except Exception:
                log.exception("audit append failed; records kept for the next try")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "unknown"


def _read_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, list[str]]:
    """``Authorization``, ``X-API-Key`` and every tenant named, in one pass over the
    request's headers (ASGI names them in lower case)."""
    authorization = api_key = None
    tenants: list[str] = []
    for name, value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
        elif name in TENANT_HEADERS:
            tenants.append(value.decode("latin-1").strip())
    return authorization, api_key, tenants


def _device_home(principal: Principal, scope: Scope) -> str | None:
    """The one tenant of a device credential sending its own message without a tenant
    header (real UltraLight/JSON devices send none; FIWARE's agents find the service by the
    API key). None for anyone else, or a credential of several tenants: the header decides."""
    if principal.kind != "device" or not is_device_message(scope["method"], scope["path"]):
        return None
    if principal.platform_admin or len(principal.tenants) != 1:
        return None
    return next(iter(principal.tenants)) or None


def _decide_tenant(principal: Principal | None, named: list[str]) -> str:
    """The request's tenant (:func:`cityos.hub.tenancy.decide_tenant`, as every layer
    decides it). Conflicting headers are 400; when one of them names a tenant outside the
    credential's, the refusal is also reported as a cross-tenant attempt."""
    try:
        return decide_tenant(named)
    except TenantConflict as err:
        foreign = [t for t in err.tenants if principal is not None and not principal.in_tenant(t)]
        if foreign:
            err.tenant = foreign[0]  # type: ignore[attr-defined]
            refused(err, principal, "tenant")
        raise


async def _problem(send: Send, err: NgsiLdError, accept: str | None = None) -> None:
    body = orjson.dumps(
        {"type": err.type_uri, "title": err.title, "status": err.status, "detail": err.detail}
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", problem_media(accept).encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    extra: Any = getattr(err, "headers", None)
    if isinstance(extra, dict):
        headers += [(k.lower().encode(), str(v).encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _rules_context(hub: Hub, raw: Any) -> Any:
    try:
        return hub.contexts.resolve(raw)
    except Exception as exc:  # unreachable, not JSON-LD: the server stops with the reason
        raise PolicyError(f"the rules' @context cannot be resolved: {exc}") from None


def load_policy(
    hub: Hub, parts: Mapping[str, tuple[Iterable[str], Iterable[str]]] | None = None
) -> Policy:
    """The rules in ``CITYOS_POLICY_PATH`` (a bad file stops the server with the reason),
    else the example roles; with a default role per registered part (``parts``: name ->
    the entity types it reads and writes; see :func:`with_part_roles`)."""
    path = hub.settings.policy_path
    doc = read_rules(path) if path else EXAMPLE_ROLES
    # the rules' own @context (a hosted or inline one: the terms the city's data is written
    # in, e.g. Smart Data Models'), else the core context
    ctx = core_context() if doc.get("@context") is None else _rules_context(hub, doc["@context"])
    return Policy(with_part_roles(doc, parts) if parts else doc, ctx)  # compiled once

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
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from cityos.hub.core import Hub
from cityos.hub.errors import NgsiLdError
from cityos.hub.ldcontext import core_context
from cityos.hub.model import now_iso
from cityos.security.audit import AuditLog
from cityos.security.detect import Detector, cause_of, refused  # detection
from cityos.security.identity import authenticator, credentials_of
from cityos.security.policy import EXAMPLE_ROLES, Policy
from cityos.security.principal import AuthError, Principal
from cityos.security.scope import Forbidden, as_caller

log = logging.getLogger("cityos.security.guard")

# Reachable without credentials: liveness, the API description, getting a token.
OPEN_PATHS = frozenset({"/health", "/version", "/openapi.json", "/auth/token", "/auth/jwks.json"})
TENANT_HEADERS = (b"ngsild-tenant", b"fiware-service")


def action_of(method: str, path: str, query: str) -> str:
    """The policy action a route performs."""
    if path.startswith(("/iot/", "/audit", "/ngsi-ld/v1/jsonldContexts")):
        if path.startswith(("/iot/d", "/iot/json")) and method == "POST":
            return "write"  # device measures (the device key's own check follows)
        return "administer" if method != "GET" or path.startswith("/audit") else "read"
    if "/subscriptions" in path:
        return "subscribe"
    if path.endswith("/entityOperations/query"):
        return "read"
    if method in ("GET", "HEAD"):
        if "/temporal/" in path and "aggrMethods" in parse_qs(query):
            return "aggregate"
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
        authorization, api_key, tenant = _read_headers(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        action = action_of(scope["method"], path, query)
        try:
            # from memory when it can (microseconds); a signature check, a registry read or
            # a JWKS fetch goes to a thread, never blocking the event loop
            auth = authenticator(self.hub.settings, self.hub.store)
            creds = credentials_of(authorization, api_key)
            found = auth.cached_of(creds)
            if found is None:
                found = await asyncio.to_thread(auth.verify, creds)
            principal = self.check(scope, found, tenant, action)
        except NgsiLdError as err:
            self._record(scope, None, "denied", err.status, tenant, action)
            if self.detector is not None:  # detection: the refusal and why
                self._observe(scope, getattr(err, "principal", None), err.status, cause_of(err))
            await _problem(send, err)
            return
        scope.setdefault("state", {})["principal"] = principal
        as_caller(principal, tenant, self.policy)  # the data's rules (scope.py)
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            if self.detector is not None:  # detection: every request's outcome
                send = self._observing(scope, principal, send)
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
                self._observe(scope, principal, status)

    # detection: an outcome reported to the detector (a queue append), or as it goes out
    def _observe(
        self, scope: Scope, principal: Principal | None, status: int, cause: str | None = None
    ) -> None:
        assert self.detector is not None
        self.detector.observe_request(
            _client(scope),
            principal.subject if principal else None,
            _tenant(scope),
            scope["method"],
            scope["path"],
            status,
            cause=cause,
            home_tenants=principal.tenants if principal else (),
        )

    def _observing(self, scope: Scope, principal: Principal | None, send: Send) -> Send:
        async def observed(message: Any) -> None:
            if message["type"] == "http.response.start":
                self._observe(scope, principal, message["status"])
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
            tenant = _tenant(scope)
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
        if scope["path"].startswith(("/iot/d", "/iot/json")) and method == "POST":
            params = parse_qs(query)
            apikey, device = params.get("k", [""])[0], params.get("i", [""])[0]
            if principal.may_send_as_device(tenant, apikey, device):
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


def _read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str]:
    """``Authorization``, ``X-API-Key`` and the tenant, in one pass over the request's
    headers (ASGI names them in lower case)."""
    authorization = api_key = None
    tenant = ""
    found_tenant = False
    for name, value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
        elif not found_tenant and name in TENANT_HEADERS:
            tenant, found_tenant = value.decode("latin-1"), True
    return authorization, api_key, tenant


def _tenant(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name in TENANT_HEADERS:
            return value.decode("latin-1")
    return ""


async def _problem(send: Send, err: NgsiLdError) -> None:
    body = orjson.dumps(
        {"type": err.type_uri, "title": err.title, "status": err.status, "detail": err.detail}
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    extra: Any = getattr(err, "headers", None)
    if isinstance(extra, dict):
        headers += [(k.lower().encode(), str(v).encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def load_policy(hub: Hub) -> Policy:
    """The rules in ``CITYOS_POLICY_PATH`` (a bad file stops the server with the reason),
    else the example roles."""
    ctx = core_context()
    path = hub.settings.policy_path
    return Policy.load(path, ctx) if path else Policy(EXAMPLE_ROLES, ctx)

"""The ASGI app: the NGSI-LD hub, OpenAPI, health — one Starlette application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import cityos
from cityos.config import Settings
from cityos.devices.agent import Agent
from cityos.hub import api
from cityos.hub.api.common import json_response, problem
from cityos.hub.core import Hub
from cityos.hub.delivery import Deliverer
from cityos.hub.errors import BadRequestData, InvalidRequest, NgsiLdError, ResourceNotFound
from cityos.hub.retention import RetentionRule, retention_rules, run_retention
from cityos.security import audit as audit_api
from cityos.security.detect import Detector
from cityos.security.guard import AuditRecorder, Guard, load_policy
from cityos.security.headers import harden
from cityos.security.scope import install as install_access
from cityos.services.registry import services
from cityos.services.runtime import contexts_for
from cityos.web.dashboard import Dashboard
from cityos.web.dashboard import routes as dashboard_routes
from cityos.web.headercase import CanonicalHeaderCase
from cityos.web.openapi import openapi_document

log = logging.getLogger("cityos.web")


class NormalisePath:
    """Route ``/entities`` and ``/entities/`` the same (real clients send both), and keep an
    encoded ``/`` (``%2F``) inside one path segment, as in an attribute IRI, from splitting it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            if b"%00" in raw or b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
                # no id, type, attribute or parameter holds NUL, and PostgreSQL cannot store it
                err = BadRequestData("a path or query parameter may not hold NUL (%00)")
                accept = Headers(scope=scope).get("accept")
                await problem(err, scope["path"], accept)(scope, receive, send)
                return
            path = scope["path"]
            if b"%2f" in raw.lower():
                path = unquote(
                    re.sub(rb"%2[fF]", b"%252F", raw).decode("latin-1"), encoding="utf-8"
                )
            if len(path) > 1 and path.endswith("/"):
                path = path.rstrip("/") or "/"
                raw = raw.rstrip(b"/") or b"/"
                scope = dict(scope)
                scope["cityos.trailing_slash"] = True  # `/entities/` may mean an empty id
            if path != scope["path"]:
                scope = dict(scope)
                scope["path"] = path
                scope["raw_path"] = raw
        await self.app(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    path = request.url.path
    if path.startswith("/ngsi-ld/v1/") and "//" in path:
        # an empty id or name where the route has one (``/entities//attrs``): the request is
        # malformed, not about something missing (clause 6.3.1)
        err: NgsiLdError = BadRequestData(f"an empty id or name in the path {path}")
    else:
        err = ResourceNotFound(f"no route {request.method} {path}")
    return problem(err, path, request.headers.get("accept"))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    """405 with the route's methods in ``Allow`` (RFC 9110, section 15.5.6: a 405 MUST
    carry it); Starlette's router puts them on the exception it raises. But ``PUT`` or
    ``PATCH /ngsi-ld/v1/entities/`` names an entity by an empty id: that request is
    malformed (400), as ETSI's suite checks (054_02_02, 056_02_02); on the other
    collections (``DELETE /subscriptions/``, …) the suite expects the 405."""
    path = request.url.path
    if (
        request.scope.get("cityos.trailing_slash")
        and path == "/ngsi-ld/v1/entities"
        and request.method in ("PUT", "PATCH")
    ):
        err = BadRequestData(f"an empty id in the path {path}/")
        return problem(err, path, request.headers.get("accept"))
    allow = (getattr(exc, "headers", None) or {}).get("Allow", "")
    err = InvalidRequest(
        f"method {request.method} is not allowed on {path}"
        + (f"; allowed: {allow}" if allow else ""),
        status=405,
    )
    response = problem(err, path, request.headers.get("accept"))
    if allow:
        response.headers["Allow"] = allow
    return response


async def _retention_loop(hub: Hub, rules: list[RetentionRule], interval_s: int) -> None:
    """Apply the retention rules on a schedule, off the event loop; log, never crash."""
    while True:
        try:
            results = await asyncio.to_thread(run_retention, hub.store, rules)
            deleted = sum(r.deleted for r in results)
            if deleted:
                log.info("retention deleted %d history rows", deleted)
        except Exception:
            log.exception("retention run failed; retrying in %ss", interval_s)
        await asyncio.sleep(interval_s)


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> ASGIApp:
    settings = settings or (hub.settings if hub else Settings.load())
    notify_private = settings.notify_private_allowed()  # hardening: a bad value stops here
    hub = hub or Hub(settings)

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document())

    registered = services()  # the cityos.services entry points; a bad one stops here
    dashboard = Dashboard(registered, {})  # two services bringing one page stop here
    dashboard.stream_s = settings.dashboard_stream_s

    async def health(request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "engine": hub.store.engine, "worker": os.getpid()}
        reports = {s.name: s.health for s in registered if s.health is not None}
        if reports:  # each part's own health, under services.<name>
            body["services"] = {}
            for name, report in reports.items():
                try:
                    body["services"][name] = await asyncio.to_thread(report, contexts[name])
                except Exception as exc:  # one part's failure is reported, not raised
                    log.exception("health of service %s failed", name)
                    body["services"][name] = {"status": "error", "detail": str(exc)}
            if any(r.get("status", "ok") != "ok" for r in body["services"].values()):
                body["status"] = "degraded"
        return JSONResponse(body)

    async def version(request: Request) -> Response:
        return JSONResponse({"name": "cityos", "version": cityos.__version__, "ngsi-ld": "1.8.1"})

    routes: list[Any] = [
        *api.routes(),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        # every registered part's routes: the IoT agent, identity, audit, the services
        *(route for service in registered for route in service.routes()),
        # the operations dashboard: the pages the registered parts bring (cityos.web.dashboard)
        *dashboard_routes(dashboard, settings.auth_required),
    ]
    audit_log = audit_api.AuditLog(
        hub.store, key_path=settings.audit_key_path, anchor_path=settings.audit_anchor_path
    )
    recorder = AuditRecorder(audit_log)
    # the roles' rules, with a role per registered part for its own credentials (what it
    # declares it reads and writes); a bad rules file stops the server here, with the reason
    policy = load_policy(hub, {s.name: (s.reads, s.writes) for s in registered})
    # detection: requests (through the door) and device measures; bad ranges stop here
    detector = Detector(hub) if settings.detect else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        deliverer = Deliverer(
            hub.store,
            timeout_s=settings.notify_timeout_s,
            backoff_s=settings.notify_backoff_s,
            max_attempts=settings.notify_max_attempts,
            poll_s=settings.notify_poll_s,
            local=hub.local_receivers,
            index=hub.subscriptions,
            allow_private=notify_private,  # hardening: SSRF guard (cityos.hub.netguard)
        )
        app.state.deliverer = deliverer  # a subscription read waits for its sending
        delivery = asyncio.create_task(deliverer.run_forever())
        task = None
        if settings.retention and settings.retention_interval_s > 0:
            rules = retention_rules(hub)  # bad rules stop the server here, with the reason
            task = asyncio.create_task(_retention_loop(hub, rules, settings.retention_interval_s))
        # each part's background tasks, started in stage order (audit, identity, devices,
        # then the services) and stopped in reverse, each awaited: the devices' last flush
        # happens before detection's last events and the audit log's last records
        service_tasks = [
            asyncio.create_task(start(contexts[s.name]), name=f"service:{s.name}")
            for s in registered
            for start in s.tasks
        ]
        yield
        for service_task in reversed(service_tasks):
            service_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await service_task
        if task is not None:
            task.cancel()
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
        await dashboard.close()  # its live subscriptions go before the hub does
        await deliverer.close()
        hub.close()

    app = Starlette(
        routes=routes,
        exception_handlers={404: _not_found, 405: _not_allowed},
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.agent = Agent(hub)
    app.state.agent.detector = detector  # detection
    app.state.mqtt_ingest = None
    app.state.detector = detector
    app.router.redirect_slashes = False
    app.state.audit = audit_log
    app.state.recorder = recorder
    app.state.policy = policy
    # name -> ServiceContext: its tasks, health and own routes find their client there
    contexts = contexts_for(registered, hub, app.state)
    app.state.services = contexts
    dashboard.contexts = contexts
    # the door (cityos.security.guard): authentication, tenant binding, roles, audit —
    # inside the path normalisation so it judges the path the router will see
    install_access()  # the hub's access check (cityos.hub.access) by these rules
    wrapped = NormalisePath(Guard(app, hub, policy, recorder, detector))
    # hardening: security headers, CORS if configured, rate limits (cityos.security.headers)
    wrapped = harden(wrapped, settings)
    # header names in their canonical case on the wire (cityos.web.headercase)
    wrapped = CanonicalHeaderCase(wrapped)
    wrapped.state = app.state  # type: ignore[attr-defined]
    return wrapped

"""The operations dashboard's routes.

``/`` and its two static files are open (they hold no data: a shell that asks who you are);
everything under ``/ui/api/`` goes through the door like any API call (a ``read``), in the
viewer's tenant, so each page shows a role what its grant allows and nothing more. That
includes ``POST /ui/api/pages/{slug}``, a page's form answered: it computes panels from the
submitted values and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cityos.hub import access
from cityos.hub.api.common import json_response, problem, read_limited, tenant_of
from cityos.hub.errors import BadRequestData, InvalidRequest, NgsiLdError, ResourceNotFound
from cityos.hub.jsonbody import parse_json
from cityos.plug import FormError, Page, Panel, Service, ServiceContext
from cityos.twin.context import DISTRICT_TERMS

from .draw import page_html
from .live import LiveFeed

log = logging.getLogger("cityos.web.dashboard")

# the shell's own policy: scripts, styles and fetches from this origin only; SVG is inline
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", "text/css; charset=utf-8"),
}
OPEN_PATHS = frozenset(STATIC)  # the security door lists the same paths (security/guard.py)
HEARTBEAT_S = 15.0
MIN_REFRESH_S = 1.0  # changes closer than this are one refresh
FORM_MAX_BYTES = 64 * 1024  # a form's values: a few hundred bytes; more is not a form
FORM_MAX_DEPTH = 4


class Dashboard:
    """The pages every registered part brings, and the live feed they share."""

    def __init__(self, registered: Iterable[Service], contexts: dict[str, ServiceContext]):
        self.contexts = contexts
        self.pages: dict[str, tuple[str, Page]] = {}
        for service in registered:
            for page in service.pages():
                if page.slug in self.pages:
                    other = self.pages[page.slug][0]
                    raise ValueError(
                        f"dashboard page {page.slug!r} is brought by both {other} and "
                        f"{service.name}"
                    )
                self.pages[page.slug] = (service.name, page)
        self.feed: LiveFeed | None = None
        self.stream_s = 300.0  # the app sets it from dashboard_stream_s

    def ordered(self) -> list[tuple[str, Page]]:
        return sorted(self.pages.values(), key=lambda sp: (sp[1].order, sp[1].slug))

    def client(self, service: str, tenant: str) -> Any:
        return self.contexts[service].client.for_tenant(tenant)

    def expanded(self, service: str, types: Iterable[str]) -> list[str]:
        """The types' IRIs in the service's own @context and in the Smart Data Models
        terms the district and most services write (a short name may mean either)."""
        client = self.contexts[service].client
        ctxs = [client.ctx, client.for_context(DISTRICT_TERMS).ctx]
        return list(dict.fromkeys(ctx.expand_term(t) for t in types for ctx in ctxs))

    def hidden(self, service: str, page: Page) -> list[str]:
        """The types the page shows that the viewer's role may not read."""
        return [
            name
            for name in page.reads
            if not any(map(access.listed, self.expanded(service, [name])))
        ]

    def find(self, slug: str) -> tuple[str, Page]:
        found = self.pages.get(slug)
        if found is None:
            raise ResourceNotFound(f"no dashboard page {slug!r}")
        return found

    def live(self) -> LiveFeed:
        if self.feed is None:
            first = next(iter(self.contexts.values()))
            self.feed = LiveFeed(first.client)
        return self.feed

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()


def _static(name: str, media: str) -> Any:
    body = resources.files(__package__).joinpath("static", name).read_bytes()

    async def serve(request: Request) -> Response:
        headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
        return Response(body, media_type=media, headers=headers)

    return serve


def _principal(request: Request) -> Any:
    return request.scope.get("state", {}).get("principal")


def _drawn(page: Page, panels: list[Panel], hidden: list[str]) -> dict[str, Any]:
    return {
        "slug": page.slug,
        "title": page.title,
        "hidden": hidden,
        "html": page_html(panels, hidden),
        "generatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _broken(page: Page, name: str, what: str, exc: Exception) -> list[Panel]:
    """One service's broken page is its own, not the dashboard's: said on the page, the
    reason in the server's log only."""
    log.exception("dashboard page %s of %s failed", page.slug, name)
    why = f"This page could not be {what}: {type(exc).__name__}. The server's log has more."
    return [Panel(page.title, "text", why)]


def _not_answered(slug: str) -> NgsiLdError:
    return InvalidRequest(
        f"method POST is not allowed on /ui/api/pages/{slug}: the page has no form; allowed: GET",
        status=405,
    )


def form_values(raw: bytes) -> dict[str, Any]:
    """A form's submitted values: one JSON object (400 otherwise, saying why in a line)."""
    if not raw.strip():
        raise InvalidRequest("the request body is empty: send the form's values as a JSON object")
    values = parse_json(raw, max_depth=FORM_MAX_DEPTH)
    if not isinstance(values, dict):
        kind = "an array" if isinstance(values, list) else f"a {type(values).__name__}"
        raise BadRequestData(f"expected a JSON object of the form's values, got {kind}")
    return values


def routes(dashboard: Dashboard, auth_required: bool) -> list[Route]:
    """The shell, its assets and the page API."""

    async def me(request: Request) -> Response:
        try:
            tenant = tenant_of(request, read=False)
        except NgsiLdError as err:
            return problem(err, request.url.path)
        who = _principal(request)
        body: dict[str, Any] = {"auth_required": auth_required, "tenant": tenant}
        if who is not None:
            body.update(
                subject=who.subject,
                roles=sorted(who.roles),
                tenants=sorted(who.tenants),
                kind=who.kind,
            )
        return json_response(body)

    async def page_list(request: Request) -> Response:
        return json_response(
            [{"slug": p.slug, "title": p.title, "service": name} for name, p in dashboard.ordered()]
        )

    async def page_view(request: Request) -> Response:
        try:
            name, page = dashboard.find(request.path_params["slug"])
            tenant = tenant_of(request, read=True)
        except NgsiLdError as err:
            return problem(err, request.url.path)
        client = dashboard.client(name, tenant)
        hidden = dashboard.hidden(name, page)
        # in a thread that carries the viewer's context: the access check applies inside
        try:
            panels = await asyncio.to_thread(page.panels, client)
        except NgsiLdError as err:  # the viewer's own request refused inside the page
            return problem(err, request.url.path)
        except Exception as exc:
            panels = _broken(page, name, "drawn", exc)
        return json_response(_drawn(page, panels, hidden))

    async def page_answer(request: Request) -> Response:
        """A page's form answered: ``page.answer(client, values)`` under the viewer's grant,
        drawn like the page; a value the page refuses is a 400 naming its field."""
        try:
            name, page = dashboard.find(request.path_params["slug"])
            if page.answer is None:
                response = problem(_not_answered(page.slug), request.url.path)
                response.headers["Allow"] = "GET"
                return response
            tenant = tenant_of(request, read=True)
            values = form_values(await read_limited(request, FORM_MAX_BYTES, "form"))
        except NgsiLdError as err:
            return problem(err, request.url.path)
        client = dashboard.client(name, tenant)
        hidden = dashboard.hidden(name, page)
        try:
            panels = await asyncio.to_thread(page.answer, client, values)
        except FormError as err:
            return problem(BadRequestData(err.message, field=err.field), request.url.path)
        except NgsiLdError as err:
            return problem(err, request.url.path)
        except Exception as exc:
            panels = _broken(page, name, "answered", exc)
        return json_response(_drawn(page, panels, hidden))

    async def page(request: Request) -> Response:  # one route: a 405 lists both methods
        return await (page_answer if request.method == "POST" else page_view)(request)

    async def page_events(request: Request) -> Response:
        try:
            name, page = dashboard.find(request.path_params["slug"])
            tenant = tenant_of(request, read=True)
        except NgsiLdError as err:
            return problem(err, request.url.path)
        watched = [
            uri for uri in dashboard.expanded(name, page.watch) if access.listed(uri)
        ]  # a change to a type the viewer may not read says nothing to it

        ends = time.monotonic() + dashboard.stream_s

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 3000\n\n"
            if dashboard.stream_s <= 0:
                return
            async with dashboard.live().listen(tenant, watched) as queue:
                while (left := ends - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(queue.get(), min(HEARTBEAT_S, left))
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    await asyncio.sleep(MIN_REFRESH_S)
                    while not queue.empty():  # the burst is one refresh
                        queue.get_nowait()
                    data = orjson.dumps({"page": page.slug})
                    yield b"event: change\ndata: " + data + b"\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    served = [Route(path, _static(*what), methods=["GET"]) for path, what in STATIC.items()]
    return [
        *served,
        Route("/ui/api/me", me, methods=["GET"]),
        Route("/ui/api/pages", page_list, methods=["GET"]),
        Route("/ui/api/pages/{slug}", page, methods=["GET", "POST"]),
        Route("/ui/api/pages/{slug}/events", page_events, methods=["GET"]),
    ]

"""The flows service's HTTP routes, under ``/services/flows/``.

* ``GET /services/flows/privacy-report`` — what personal data the city holds, why, for how
  long, and what was released from it at what ε (:func:`cityos.privacy.privacy_report`).
* ``GET /services/flows/zones`` — the registered zones.
* ``POST /services/flows/releases/{od|crowd|dwell}`` — a differentially private release,
  charged to the dataset's budget for the day; body ``{"day": "YYYY-MM-DD", "epsilon": 0.5,
  "delta": 0, "mechanism": "laplace", "zones": [...]}``. A POST, since each one spends budget.

They reach the hub only through the service's client, for the request's tenant, so the
caller's rules apply to every read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cityos.hub.api.common import endpoint, tenant_of
from cityos.hub.errors import BadRequestData, NgsiLdError
from cityos.privacy import (
    BudgetExceeded,
    PrivacyError,
    load_settings,
    privacy_report,
)

from .days import parse_day
from .errors import FlowsError, NoZones
from .releases import crowd_release, dwell_release, od_release
from .zones import load_zones

BASE = "/services/flows"
RELEASES = {"od": od_release, "crowd": crowd_release, "dwell": dwell_release}
_BODY_KEYS = {"day", "epsilon", "delta", "mechanism", "zones"}


class BudgetRefused(NgsiLdError):
    """409: the release would take the dataset's day over its privacy budget."""

    type_name = "BudgetExceeded"
    status = 409
    title = "Privacy budget exceeded"

    @property
    def type_uri(self) -> str:
        return "https://cityos.example/errors/BudgetExceeded"


def _ctx(request: Request) -> Any:
    return request.app.state.services["flows"]


def client_of(request: Request) -> Any:
    ctx = _ctx(request)
    tenant = tenant_of(request, read=True) or ctx.settings.tenant
    return ctx.client.for_tenant(tenant)


@endpoint
async def flows_privacy_report(request: Request) -> Response:
    ctx = _ctx(request)
    out = await asyncio.to_thread(privacy_report, client_of(request), load_settings(ctx.core))
    return JSONResponse(out)


@endpoint
async def flows_zones(request: Request) -> Response:
    zones = await asyncio.to_thread(load_zones, client_of(request), required=False)
    return JSONResponse(
        [
            {"id": z.id, "name": z.name, "capacity": z.capacity, "location": z.location}
            for z in zones.zones.values()
        ]
    )


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise BadRequestData("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object")
    unknown = sorted(set(body) - _BODY_KEYS)
    if unknown:
        raise BadRequestData(f"unknown member(s) {', '.join(unknown)}; use {sorted(_BODY_KEYS)}")
    if "day" not in body or "epsilon" not in body:
        raise BadRequestData('a release needs "day" (YYYY-MM-DD) and "epsilon"')
    zones = body.get("zones")
    if zones is not None and (
        not isinstance(zones, list) or not all(isinstance(z, str) for z in zones)
    ):
        raise BadRequestData('"zones" must be a list of zone ids')
    return body


@endpoint
async def flows_release(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind not in RELEASES:
        raise BadRequestData(f"unknown release {kind!r}; use {', '.join(RELEASES)}")
    body = _body(await request.body())
    ctx = _ctx(request)
    client = client_of(request)

    def run() -> dict[str, Any]:
        release = RELEASES[kind](
            client,
            parse_day(str(body["day"])),
            epsilon=body["epsilon"],
            delta=body.get("delta", 0.0),
            mechanism=body.get("mechanism", "laplace"),
            zones=body.get("zones"),
            settings=ctx.settings,
            privacy=load_settings(ctx.core),
        )
        return release.as_dict()

    try:
        out = await asyncio.to_thread(run)
    except BudgetExceeded as exc:
        raise BudgetRefused(str(exc)) from None
    except NoZones as exc:
        raise BadRequestData(str(exc)) from None
    except (PrivacyError, FlowsError) as exc:
        raise BadRequestData(str(exc)) from None
    return JSONResponse(out, status_code=201)


def routes() -> list[Route]:
    return [
        Route(f"{BASE}/privacy-report", flows_privacy_report, methods=["GET"]),
        Route(f"{BASE}/zones", flows_zones, methods=["GET"]),
        Route(f"{BASE}/releases/{{kind}}", flows_release, methods=["POST"]),
    ]


def openapi() -> dict[str, Any]:
    """The path items of these routes, for ``/openapi.json``."""
    problem = {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    }
    ok = {"application/json": {"schema": {"type": "object"}}}
    errors = {
        code: {"description": desc, "content": problem}
        for code, desc in (
            ("400", "Bad request: an unknown zone, epsilon <= 0, a malformed body"),
            ("401", "No valid credentials (when authentication is required)"),
            ("403", "Forbidden"),
            ("404", "Unknown tenant"),
            ("409", "The release would exceed the dataset's privacy budget for the day"),
        )
    }
    body = {
        "type": "object",
        "required": ["day", "epsilon"],
        "additionalProperties": False,
        "properties": {
            "day": {"type": "string", "format": "date"},
            "epsilon": {"type": "number", "exclusiveMinimum": 0},
            "delta": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "mechanism": {"type": "string", "enum": ["laplace", "gaussian"]},
            "zones": {"type": "array", "items": {"type": "string"}},
        },
    }
    return {
        f"{BASE}/privacy-report": {
            "get": {
                "summary": "The privacy report: datasets held, purposes, retention, releases",
                "operationId": "get_services_flows_privacy_report",
                "responses": {"200": {"description": "The report", "content": ok}, **errors},
            }
        },
        f"{BASE}/zones": {
            "get": {
                "summary": "The registered zones",
                "operationId": "get_services_flows_zones",
                "responses": {
                    "200": {
                        "description": "The zones",
                        "content": {"application/json": {"schema": {"type": "array"}}},
                    },
                    **errors,
                },
            }
        },
        f"{BASE}/releases/{{kind}}": {
            "post": {
                "summary": "A differentially private release (od, crowd or dwell) of one day",
                "operationId": "post_services_flows_releases_kind",
                "parameters": [
                    {
                        "name": "kind",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(RELEASES)},
                    },
                ],  # fmt: skip
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "201": {
                        "description": "The release, with its ε, δ and mechanism",
                        "content": ok,
                    },
                    **errors,
                },  # fmt: skip
            }
        },
    }

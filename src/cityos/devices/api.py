"""HTTP routes of the IoT agent: FIWARE IoT Agent provisioning and HTTP southbound ingest."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityos.devices import ultralight
from cityos.devices.agent import DEVICE, GROUP, Agent, validate_device, validate_group
from cityos.devices.commands import parse_ul_result
from cityos.hub.api.common import (
    endpoint,
    hub_of,
    json_response,
    path_param,
    read_body,
    read_limited,
)
from cityos.hub.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiLdError,
    PayloadTooLarge,
    ResourceNotFound,
    UnsupportedMediaType,
)
from cityos.hub.jsonbody import parse_json
from cityos.hub.model import MAX_ID_BYTES, check_size
from cityos.hub.tenancy import tenant_of_headers, tenant_values


def _agent(request: Request) -> Agent:
    return request.app.state.agent


def _tenant(request: Request) -> str:
    """``fiware-service`` (or ``NGSILD-Tenant``): one decision for every layer."""
    return tenant_of_headers(request.scope["headers"])


def _device_tenant(request: Request, apikey: str) -> str:
    """The tenant of a device's own message. The door's decision when it ran (it checked
    the device's credential in that tenant); else the tenant the headers name; else, as
    FIWARE's IoT Agents do for devices that send no ``fiware-service`` (UltraLight over
    HTTP, like MQTT here), the service whose group owns the API key. A key owned by several
    services is ambiguous: 400, name the service."""
    state = request.scope.get("state") or {}
    if "principal" in state:
        return state["tenant"]
    if tenant_values(request.scope["headers"]):
        return _tenant(request)
    owners = _agent(request).tenants_for(apikey)
    if len(owners) > 1:
        raise BadRequestData(
            f"API key {apikey[:64]!r} belongs to {len(owners)} services:"
            " send fiware-service to name one"
        )
    return owners[0] if owners else ""


def _items(body: Any, key: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list) or not body[key]:
        raise BadRequestData(f'the body must be {{"{key}": [ ... ]}}')
    return body[key]


@endpoint
async def add_services(request: Request) -> Response:
    tenant = _tenant(request)
    groups = _items(await read_body(request), "services")
    for group in groups:  # every one checked before any is kept: all or nothing
        validate_group(group)
    for group in groups:
        _agent(request).add_group(tenant, group)
    return Response(status_code=201)


@endpoint
async def list_services(request: Request) -> Response:
    groups = hub_of(request).store.list_docs(GROUP, _tenant(request))
    return json_response({"count": len(groups), "services": groups})


@endpoint
async def delete_service(request: Request) -> Response:
    apikey = request.query_params.get("apikey")
    if not apikey:
        raise BadRequestData("give the service group's apikey as a query parameter")
    if not _agent(request).delete_group(_tenant(request), apikey):
        raise ResourceNotFound(f"no service group with apikey {apikey!r}")
    return Response(status_code=204)


@endpoint
async def add_devices(request: Request) -> Response:
    tenant = _tenant(request)
    devices = _items(await read_body(request), "devices")
    agent = _agent(request)
    seen: set[str] = set()
    for device in devices:  # every one checked before any is kept: all or nothing
        device_id = validate_device(device)["device_id"]
        if device_id in seen or hub_of(request).store.get_doc(DEVICE, tenant, device_id):
            raise AlreadyExists(f"device {device_id} already exists")
        seen.add(device_id)
    added: list[str] = []
    try:
        for device in devices:
            agent.add_device(tenant, device)
            added.append(device["device_id"])
    except Exception:  # e.g. a command the hub refused: the ones added go again
        for device_id in added:
            agent.delete_device(tenant, device_id)
        raise
    return Response(status_code=201)


@endpoint
async def list_devices(request: Request) -> Response:
    devices = hub_of(request).store.list_docs(DEVICE, _tenant(request))
    return json_response({"count": len(devices), "devices": devices})


@endpoint
async def get_device(request: Request) -> Response:
    tenant = _tenant(request)
    device_id = path_param(request, "device_id")
    device = hub_of(request).store.get_doc(DEVICE, tenant, device_id)
    if device is None:
        raise ResourceNotFound(f"no device {device_id!r}")
    return json_response({**device, "stats": _agent(request).device_stats(tenant, device_id)})


@endpoint
async def delete_device(request: Request) -> Response:
    device_id = path_param(request, "device_id")
    if not _agent(request).delete_device(_tenant(request), device_id):
        raise ResourceNotFound(f"no device {device_id!r}")
    return Response(status_code=204)


def _keys(request: Request) -> tuple[str, str]:
    k, i = request.query_params.get("k"), request.query_params.get("i")
    if not k or not i:
        raise BadRequestData("give the API key as k= and the device id as i=")
    # the identifiers' limits (docs/api.md, "Limits"), before any lookup or counter
    return check_size(k, MAX_ID_BYTES, "API key k"), check_size(i, MAX_ID_BYTES, "device id i")


async def _admitted(request: Request, tenant: str, apikey: str, device_id: str) -> bytes:
    """The message body, once the device's flood limit and the size limit let it in; a
    refusal (429, 413) is counted for the device."""
    agent = _agent(request)
    try:
        agent.check(apikey, device_id)
        return await read_limited(request, agent.max_message_bytes, "a device message")
    except NgsiLdError as err:
        reason = "PayloadTooLarge" if isinstance(err, PayloadTooLarge) else type(err).__name__
        agent.count(tenant, device_id, ok=False, reason=reason, detail=err.detail)
        raise


def _malformed(agent: Agent, tenant: str, device_id: str, what: str, exc: Exception) -> Exception:
    err = BadRequestData(f"device {device_id!r}: malformed {what}: {exc}")
    agent.count(tenant, device_id, ok=False, reason="MalformedPayload", detail=err.detail)
    return err


@endpoint
async def ingest_ultralight(request: Request) -> Response:
    """POST /iot/d?k=<apikey>&i=<device_id> with ``t|25.1|h|60`` (text/plain), or a command
    result ``<device_id>@<command>|<result>``."""
    apikey, device_id = _keys(request)
    tenant = _device_tenant(request, apikey)
    agent = _agent(request)
    raw = await _admitted(request, tenant, apikey, device_id)
    try:
        text = raw.decode("utf-8")
        if text.lstrip().startswith(f"{device_id}@"):
            results = parse_ul_result(device_id, text)
            agent.command_result(tenant, apikey, device_id, results)
            return Response(status_code=200)
        groups = ultralight.parse(text)
    except (ultralight.UltraLightError, UnicodeDecodeError) as exc:
        raise _malformed(agent, tenant, device_id, "UltraLight", exc) from None
    for group in groups:
        agent.ingest(tenant, apikey, device_id, group.measures, group.timestamp)
    return Response(status_code=200)


async def _json_message(request: Request, tenant: str, apikey: str, device_id: str) -> dict:
    agent = _agent(request)
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(f"Content-Type {media or '(none)'}: use application/json")
    raw = await _admitted(request, tenant, apikey, device_id)
    try:
        body = parse_json(raw, max_depth=hub_of(request).settings.max_json_depth)
        if not isinstance(body, dict):
            raise ValueError("a JSON message must be an object")
    except (NgsiLdError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, NgsiLdError) else str(exc)
        raise _malformed(agent, tenant, device_id, "JSON", ValueError(detail)) from None
    return body


@endpoint
async def ingest_json(request: Request) -> Response:
    """POST /iot/json?k=<apikey>&i=<device_id> with ``{"t": 25.1, "h": 60}``."""
    apikey, device_id = _keys(request)
    tenant = _device_tenant(request, apikey)
    body = await _json_message(request, tenant, apikey, device_id)
    timestamp = body.pop("TimeInstant", None)
    _agent(request).ingest(tenant, apikey, device_id, body, timestamp)
    return Response(status_code=200)


@endpoint
async def json_command_result(request: Request) -> Response:
    """POST /iot/json/commands?k=<apikey>&i=<device_id> with ``{"<command>": <result>}``."""
    apikey, device_id = _keys(request)
    tenant = _device_tenant(request, apikey)
    body = await _json_message(request, tenant, apikey, device_id)
    _agent(request).command_result(tenant, apikey, device_id, body)
    return Response(status_code=200)


ROUTES = [
    ("/iot/services", "POST", add_services, "Provision service groups (FIWARE IoT Agent API)"),
    ("/iot/services", "GET", list_services, "List service groups"),
    ("/iot/services", "DELETE", delete_service, "Delete a service group (apikey=)"),
    ("/iot/devices", "POST", add_devices, "Provision devices (FIWARE IoT Agent API)"),
    ("/iot/devices", "GET", list_devices, "List devices"),
    ("/iot/devices/{device_id}", "GET", get_device, "A device, with its ingest counters"),
    ("/iot/devices/{device_id}", "DELETE", delete_device, "Delete a device"),
    ("/iot/d", "POST", ingest_ultralight, "UltraLight 2.0 measures over HTTP (k=, i=)"),
    ("/iot/json", "POST", ingest_json, "JSON measures over HTTP (k=, i=)"),
    ("/iot/json/commands", "POST", json_command_result, "JSON command results over HTTP"),
]


def routes() -> list[Route]:
    from cityos.hub.api import build_routes

    return build_routes(ROUTES)

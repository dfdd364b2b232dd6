"""The OpenAPI path items of the IoT agent's ``/iot`` routes (FIWARE IoT Agent
provisioning and the southbound messages), built with the hub's route-table builder."""

from __future__ import annotations

from typing import Any

from cityos.hub.api.openapi import ID_SCHEMA as _ID
from cityos.hub.api.openapi import NAME_SCHEMA as _NAME
from cityos.hub.api.openapi import RouteDocs, operations

_KEY = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"}
_PATH_DEVICE_ID = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,256}$"}

DOCS = RouteDocs(
    params_by_op={
        ("/iot/services", "DELETE"): ["apikey"],
        ("/iot/d", "POST"): ["k", "i"],
        ("/iot/json", "POST"): ["k", "i"],
        ("/iot/json/commands", "POST"): ["k", "i"],
    },
    query_params={
        "apikey": "The service group's API key",
        "k": "The device's service group API key",
        "i": "The device id",
    },
    query_schemas={"apikey": _KEY, "k": _KEY, "i": _KEY},
    path_schemas={"device_id": _PATH_DEVICE_ID},
    success={
        ("/iot/services", "POST"): {"201": "Provisioned"},
        ("/iot/devices", "POST"): {"201": "Provisioned"},
    },
    bodies={
        ("/iot/services", "POST"): {
            "type": "object",
            "required": ["services"],
            "properties": {
                "services": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "required": ["apikey", "entity_type"],
                        "properties": {
                            "apikey": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
                            "entity_type": _NAME,
                        },
                        "additionalProperties": False,
                    },
                }
            },
            "additionalProperties": False,
        },
        ("/iot/devices", "POST"): {
            "type": "object",
            "required": ["devices"],
            "properties": {
                "devices": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["device_id"],
                        "properties": {
                            "device_id": _PATH_DEVICE_ID,
                            "entity_name": _ID,
                            "entity_type": _NAME,
                        },
                        "additionalProperties": False,
                    },
                }
            },
            "additionalProperties": False,
        },
    },
    required=("apikey", "k", "i"),
)


def paths() -> dict[str, dict[str, Any]]:
    from cityos.devices.api import ROUTES

    return operations(ROUTES, DOCS)

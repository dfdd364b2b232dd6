"""``/openapi.json``: the hub's NGSI-LD paths and every registered part's own (the IoT
agent, identity, audit, the services), each documented by the part that serves it."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from cityos.hub.api.openapi import document, hub_paths
from cityos.services.registry import services


@cache
def openapi_document() -> dict[str, Any]:
    paths = hub_paths()
    for service in services():  # each part documents its own routes
        paths.update(copy.deepcopy(service.openapi_paths()))
    return document(paths)

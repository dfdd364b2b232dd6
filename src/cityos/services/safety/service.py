"""The plug: what the safety service declares to CityOS (``SERVICE``) and its settings.

Registered in pyproject.toml under the ``cityos.services`` entry points. Cameras run at the
edge (``cityos safety run``, :mod:`.cli`): each is a device of the hub's IoT agent, and its
counts, alerts and health reach the hub as entities. Under ``cityos serve`` the service has
no task of its own; its health reports the cameras the hub knows as disconnected.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from cityos.services.base import Check, Service

from .cli import app as cli_app
from .pages import pages
from .settings import NAME, SafetySettings


def health(ctx: Any) -> dict[str, Any]:
    """The cameras the hub knows and those whose stream dropped (their Device entities)."""
    settings: SafetySettings = ctx.settings or SafetySettings()
    client = ctx.client.for_tenant(settings.tenant) if settings.tenant else ctx.client
    cameras = client.count(type="Device", q='deviceCategory=="camera"')
    down = client.query(
        type="Device",
        q='deviceCategory=="camera";deviceState=="disconnected"',
        attrs=["deviceState"],
        fmt="keyValues",
        limit=20,
    )
    return {
        "status": "degraded" if down else "ok",
        "cameras": cameras,
        "disconnected": [d["id"] for d in down],
    }


def diagnostics(ctx: Any) -> list[Check]:
    """OpenCV 4.x with the cascades the masking uses (5.x has none)."""
    install = "pip install 'opencv-python-headless==4.14.0.94'"
    if importlib.util.find_spec("cv2") is None:
        return [Check("OpenCV 4.x", False, "cv2 is not importable", install)]
    from .masking import FACE_CASCADES
    from .opencv import cv2, opencv_version

    version = opencv_version()
    four = version.startswith("4.")
    base = cv2.data.haarcascades if hasattr(cv2, "data") else ""
    missing = [n for n, _ in FACE_CASCADES if cv2.CascadeClassifier(base + n).empty()]
    return [
        Check("OpenCV 4.x", four, version, "" if four else install),
        Check("Haar face cascades", not missing, ", ".join(missing) or base,
              install if missing else ""),
    ]  # fmt: skip


SERVICE = Service(
    name=NAME,
    reads=("Device",),
    writes=("CrowdFlowObserved", "Alert", "Device"),
    kpis=("people_count", "line_crossings", "alerts"),
    cli=cli_app,
    health=health,
    settings=SafetySettings,
    diagnostics=diagnostics,
    pages=pages,
)

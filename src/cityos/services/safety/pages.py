"""The "Safety and alerts" page of the operations dashboard: every Alert of the tenant,
whichever service raised it (safety, flows, traffic, energy, the hub's own detector),
newest first, beside the cameras that the safety service runs and where both are.

Alerts are read without their ``snapshot`` (a masked JPEG each): the page lists, the
alert's own entity shows the picture. Cameras are the ``Device`` entities of category
``camera`` whose health the service reports (:mod:`.cameradevice`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from cityos.services.base import Page, Panel

from .cameradevice import CATEGORY

MAX_ALERTS = 1000  # the newest written are read (then sorted by when they were issued)
MAX_CAMERAS = 1000
MAPPED_ALERTS = 200
SEVERITIES = ("critical", "high", "medium", "low")
ALERT_ATTRS = ["category", "subCategory", "severity", "description", "dateIssued", "validTo",
               "alertSource", "location", "zone"]  # fmt: skip
CAMERA_ATTRS = ["name", "deviceState", "frameRate", "framesProcessed", "peopleCount",
                "dateLastFrame", "streamError", "location"]  # fmt: skip
NOTHING = (
    "No camera and no Alert in the hub yet. A camera joins with `cityos safety run --source "
    "VIDEO_OR_STREAM --location LON,LAT`: it provisions its Device and writes its counts, "
    "health and alerts. Alerts also come from the flows, traffic and energy services."
)
NO_CAMERAS = (
    "No camera in the hub yet: `cityos safety run --source VIDEO_OR_STREAM --location "
    "LON,LAT` provisions one (a Device of category camera) and reports its health."
)


def _time(value: Any) -> datetime | None:
    """An instant as services write it (text, or ``{"@type": "DateTime", "@value"}``)."""
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _show(at: datetime | None) -> str | None:
    return None if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    n = _num(value)
    return None if n is None else round(n)


def _point(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value.get("type") == "Point" else None


def _local(urn: str) -> str:
    """``urn:ngsi-ld:RoadSegment:e%2F1`` as ``RoadSegment e/1``."""
    if not urn.startswith("urn:ngsi-ld:"):
        return urn
    kind, _, rest = urn.removeprefix("urn:ngsi-ld:").partition(":")
    return f"{kind} {unquote(rest)}".strip()


def _cameras(client: Any) -> list[dict[str, Any]]:
    found = client.query(type="Device", q=f'deviceCategory=="{CATEGORY}"', attrs=CAMERA_ATTRS,
                         limit=MAX_CAMERAS, fmt="keyValues")  # fmt: skip
    return sorted(found, key=lambda c: str(c.get("name") or c["id"]))


def _camera_name(camera: dict[str, Any]) -> str:
    return str(camera.get("name") or _local(camera["id"]).removeprefix("Device "))


def _alerts(client: Any) -> tuple[int, list[dict[str, Any]]]:
    """How many Alerts the viewer may read, and the newest written (up to MAX_ALERTS)."""
    total = client.count(type="Alert")
    if not total:
        return 0, []
    found = client.query(type="Alert", attrs=ALERT_ATTRS, limit=MAX_ALERTS,
                         offset=max(0, total - MAX_ALERTS), fmt="keyValues")  # fmt: skip
    return total, found


def is_open(alert: dict[str, Any], now: datetime) -> bool:
    """Open: more than informational, and not past its ``validTo`` (when it has one)."""
    if str(alert.get("severity") or "").lower() == "informational":
        return False
    until = _time(alert.get("validTo"))
    return until is None or until >= now


def _where(alert: dict[str, Any], cameras: dict[str, dict[str, Any]]) -> str | None:
    parts = []
    source = alert.get("alertSource")
    if isinstance(source, str) and source:
        camera = cameras.get(source)
        parts.append(_camera_name(camera) if camera else _local(source))
    if alert.get("zone"):
        parts.append(f"zone {alert['zone']}")
    point = _point(alert.get("location"))
    if not parts and point:
        lon, lat = point["coordinates"][:2]
        parts.append(f"{lat:.5f}, {lon:.5f}")
    return " · ".join(parts) or None


def _newest_first(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By ``dateIssued``, newest first; those with no time last."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(
        alerts, key=lambda a: (_time(a.get("dateIssued")) or floor, a["id"]), reverse=True
    )


def _rows(alerts: list[dict[str, Any]], cameras: dict[str, dict[str, Any]]) -> list[dict]:
    """The alerts panel's rows, in the order given."""
    return [
        {"id": a["id"], "category": a.get("category"), "severity": a.get("severity"),
         "description": a.get("description"), "time": _show(_time(a.get("dateIssued"))),
         "where": _where(a, cameras)}
        for a in alerts
    ]  # fmt: skip


def _metrics(cameras: list[dict], total: int, alerts: list[dict], now: datetime) -> Panel:
    online = [c for c in cameras if c.get("deviceState") == "ok"]
    people = sum(_int(c.get("peopleCount")) or 0 for c in online)
    opened = [str(a.get("severity") or "").lower() for a in alerts if is_open(a, now)]
    shown = "" if total <= len(alerts) else f"; of the newest {len(alerts)} of {total}"
    out: list[dict[str, Any]] = [
        {"label": "Cameras online", "value": len(online), "hint": f"of {len(cameras)} cameras"},
        {"label": "People in view", "value": people,
         "hint": "seen by the cameras online at their last report"},
        {"label": "Alerts", "value": total, "hint": "every service's, all time"},
    ]  # fmt: skip
    for severity in SEVERITIES:
        out.append({"label": f"Open {severity}", "value": opened.count(severity),
                    "hint": f"not informational, not past validTo{shown}"})  # fmt: skip
    return Panel("Now", "metrics", out)


def _map(cameras: list[dict], alerts: list[dict], now: datetime) -> Panel | None:
    by_id = {c["id"]: c for c in cameras}
    features = []
    for c in cameras:
        if point := _point(c.get("location")):
            state = c.get("deviceState") or "unknown"
            features.append({"geometry": point, "layer": "camera",
                             "label": f"{_camera_name(c)}: {state}"})  # fmt: skip
    for a in [a for a in alerts if is_open(a, now)][:MAPPED_ALERTS]:
        source = by_id.get(str(a.get("alertSource")), {})
        if point := _point(a.get("location")) or _point(source.get("location")):
            label = f"{a.get('severity') or 'alert'}: {str(a.get('description') or '')[:80]}"
            features.append({"geometry": point, "layer": "alert", "label": label})
    return Panel("Cameras and open alerts", "map", {"features": features}) if features else None


def _table(cameras: list[dict]) -> Panel:
    rows = [
        [_camera_name(c), c.get("deviceState"), _int(c.get("peopleCount")),
         _num(c.get("frameRate")), _int(c.get("framesProcessed")),
         _show(_time(c.get("dateLastFrame"))), c.get("streamError") or None]
        for c in cameras
    ]  # fmt: skip
    columns = ["Camera", "State", "People in view", "Frame rate (fps)", "Frames processed",
               "Last frame", "Error"]  # fmt: skip
    return Panel("Cameras", "table", {"columns": columns, "rows": rows}, wide=True)


def panels(client: Any, now: datetime | None = None) -> list[Panel]:
    """The page, for the viewer's tenant (``now``: when "open" is judged; the clock's)."""
    now = now or datetime.now(UTC)
    cameras = _cameras(client)
    total, alerts = _alerts(client)
    if not cameras and not alerts:
        return [Panel("Safety and alerts", "text", NOTHING)]
    alerts = _newest_first(alerts)
    found: Iterable[Panel | None] = (
        _metrics(cameras, total, alerts, now),
        Panel(
            "Alerts, newest first",
            "alerts",
            _rows(alerts, {c["id"]: c for c in cameras}),
            wide=True,
        ),
        _map(cameras, alerts, now),
        _table(cameras) if cameras else Panel("Cameras", "text", NO_CAMERAS),
    )
    return [p for p in found if p is not None]


def pages() -> list[Page]:
    return [
        Page(
            slug="safety",
            title="Safety and alerts",
            panels=panels,
            watch=("Alert", "Device"),
            reads=("Alert", "Device"),
            order=50,
        )
    ]

"""Drive a running CityOS hub with FIWARE's `filip` (PyPI), as its users would.

Run by ``test_filip.py`` with the interpreter of filip's interop virtualenv
(``make interop``), never imported by pytest. Usage::

    python filip_script.py '{"port": 1026, "webhook": "http://127.0.0.1:8000/", "out": "…"}'

filip's NGSI-LD client (``ContextBrokerLDClient``) sends plain ``application/json`` with the
core @context in a ``Link`` header (``application/ld+json`` only for a body that carries its
own ``@context``), and asks for ``application/ld+json`` back. It writes one JSON object to
``out``: for each step ``{"ok": true, "value": …}`` or ``{"ok": false, "error": "<traceback>"}``,
plus ``"wire"``, every HTTP request the library sent (method, path, Content-Type, Accept,
Link) and the status it got, recorded by a transparent wrapper around
``requests.Session.send`` (``requests.request`` goes through it too).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import requests

WIRE: list[dict[str, Any]] = []
_send = requests.Session.send


def _recording_send(self: requests.Session, request: Any, **kwargs: Any) -> Any:
    response = _send(self, request, **kwargs)
    WIRE.append(
        {
            "method": request.method,
            "path": request.path_url,
            "content_type": request.headers.get("Content-Type"),
            "accept": request.headers.get("Accept"),
            "link": request.headers.get("Link"),
            "status": response.status_code,
        }
    )
    return response


requests.Session.send = _recording_send  # type: ignore[method-assign]

from filip.clients.ngsi_ld.cb import ContextBrokerLDClient  # noqa: E402
from filip.models.base import FiwareLDHeader  # noqa: E402
from filip.models.ngsi_ld.context import (  # noqa: E402
    ActionTypeLD,
    ContextLDEntity,
    ContextLDEntityKeyValues,
    NamedContextProperty,
)
from filip.models.ngsi_ld.subscriptions import (  # noqa: E402
    Endpoint,
    EntityInfo,
    NotificationParams,
    SubscriptionLD,
)

TF = "urn:ngsi-ld:TrafficFlowObserved:"
T0 = "2026-11-30T07:00:00Z"


def flow(name: str, intensity: int, lon: float, lat: float, at: str = T0) -> ContextLDEntity:
    """A TrafficFlowObserved as filip models it (normalized, no @context: the Link header)."""
    return ContextLDEntity(
        id=TF + name,
        type="TrafficFlowObserved",
        intensity={"type": "Property", "value": intensity, "observedAt": at},
        averageVehicleSpeed={"type": "Property", "value": 24.5, "unitCode": "KMH"},
        location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        refRoadSegment={
            "type": "Relationship",
            "object": "urn:ngsi-ld:RoadSegment:monivong-" + name,
        },
    )


def main() -> None:
    args = json.loads(sys.argv[1])
    out: dict[str, Any] = {}
    base = f"http://127.0.0.1:{args['port']}"

    def step(name: str, fn: Callable[[], Any]) -> Any:
        try:
            value = fn()
            out[name] = {"ok": True, "value": value}
            return value
        except Exception as exc:
            detail = traceback.format_exc()
            response = getattr(exc, "response", None)
            if response is not None:
                detail += f"\nresponse {response.status_code}: {response.text}"
            out[name] = {"ok": False, "error": detail}
            return None

    cb = ContextBrokerLDClient(url=base, fiware_header=FiwareLDHeader())

    def dump(e: Any) -> Any:
        return e.model_dump(exclude_none=True) if e is not None else None

    step("version", cb.get_version)

    # -- create, retrieve, query ---------------------------------------------------------
    step("post_entity", lambda: cb.post_entity(flow("sisowath", 420, 104.9310, 11.5700)))
    step(
        "post_entity_keyvalues",  # filip turns each key-value into a Property
        lambda: cb.post_entity(
            ContextLDEntityKeyValues(
                id=TF + "norodom",
                type="TrafficFlowObserved",
                intensity=610,
                averageVehicleSpeed=18.0,
            )
        ),
    )
    step(
        # ... a location too, which the hub refuses: `location` must be a GeoProperty
        "post_entity_keyvalues_location",
        lambda: _status_of(
            lambda: cb.post_entity(
                ContextLDEntityKeyValues(
                    id=TF + "kv-location",
                    type="TrafficFlowObserved",
                    location={"type": "Point", "coordinates": [104.9260, 11.5650]},
                )
            ),
            body=True,
        ),
    )
    step(
        "post_entity_ld",  # a body with its own @context goes as application/ld+json
        lambda: cb.post_entity(
            ContextLDEntity(
                id=TF + "street-13",
                type="TrafficFlowObserved",
                intensity={"type": "Property", "value": 150, "observedAt": T0},
                location={
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [104.9224, 11.5745]},
                },
                **{"@context": ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]},
            )
        ),
    )

    def post_existing_append() -> Any:  # 409, then filip appends the attributes instead
        e = flow("sisowath", 420, 104.9310, 11.5700)
        e.add_properties([NamedContextProperty(name="laneId", value=1)])
        cb.post_entity(e, append=True)
        return dump(cb.get_entity(TF + "sisowath"))

    step("post_entity_append", post_existing_append)
    step("get_entity", lambda: dump(cb.get_entity(TF + "sisowath")))
    step(
        "get_entity_keyvalues",
        lambda: dump(cb.get_entity(TF + "sisowath", options="keyValues")),
    )
    step(
        "get_entity_attrs",
        lambda: dump(cb.get_entity(TF + "sisowath", attrs=["intensity"])),
    )
    step(
        "get_entity_missing",
        lambda: _status_of(lambda: cb.get_entity(TF + "nowhere")),
    )

    def ids(entities: list[Any]) -> list[str]:
        return sorted(e.id for e in entities)

    step("list_type", lambda: ids(cb.get_entity_list(entity_type="TrafficFlowObserved")))
    step(
        "list_q",
        lambda: ids(cb.get_entity_list(entity_type="TrafficFlowObserved", q="intensity>400")),
    )
    step(
        "list_q_relationship",
        lambda: ids(
            cb.get_entity_list(
                entity_type="TrafficFlowObserved",
                q='refRoadSegment=="urn:ngsi-ld:RoadSegment:monivong-sisowath"',
            )
        ),
    )
    step(
        "list_geo",  # within 300 m of the riverside crossing
        lambda: ids(
            cb.get_entity_list(
                entity_type="TrafficFlowObserved",
                georel="near;maxDistance==300",
                geometry="Point",
                coordinates="[104.9305,11.5702]",
            )
        ),
    )
    step(
        "list_keyvalues_limit",
        lambda: [
            dump(e)
            for e in cb.get_entity_list(
                entity_type="TrafficFlowObserved", options="keyValues", limit=2
            )
        ],
    )
    step("list_id", lambda: ids(cb.get_entity_list(entity_id=TF + "norodom")))

    # -- batch -----------------------------------------------------------------------------
    def batch(action: ActionTypeLD, entities: list[Any], options: str | None = None) -> Any:
        cb.entity_batch_operation(entities=entities, action_type=action, options=options)
        return ids(cb.get_entity_list(entity_type="TrafficFlowObserved"))

    step(
        "batch_create",
        lambda: batch(
            ActionTypeLD.CREATE,
            [flow("monivong", 880, 104.9170, 11.5680), flow("street-154", 95, 104.9280, 11.5630)],
        ),
    )

    # -- subscription: created now, notified by the writes below ---------------------------
    def subscribe() -> Any:
        sub = SubscriptionLD(
            description="heavy traffic in Daun Penh",
            entities=[EntityInfo(type="TrafficFlowObserved")],
            watchedAttributes=["intensity"],
            q="intensity>500",
            notification=NotificationParams(
                attributes=["intensity"],
                format="keyValues",
                endpoint=Endpoint(uri=args["webhook"], accept="application/json"),
            ),
        )
        sid = cb.post_subscription(sub)
        again = cb.post_subscription(sub)  # filip finds the same one and does not post twice
        listed = [s.id for s in cb.get_subscription_list()]
        return {"id": sid, "again": again, "listed": listed, "get": dump(cb.get_subscription(sid))}

    step("subscribe", subscribe)

    # -- updates ---------------------------------------------------------------------------
    def update_attribute() -> Any:  # PATCH /entities/{id}/attrs/{attr} with {"value": …}
        cb.update_entity_attribute(
            TF + "sisowath",
            NamedContextProperty(name="intensity", value=730),
            attr_name="intensity",
        )
        return dump(cb.get_entity(TF + "sisowath"))

    step("update_attribute", update_attribute)

    def replace_attrs() -> Any:  # PATCH /entities/{id}/attrs (update existing attributes)
        e = ContextLDEntity(
            id=TF + "norodom",
            type="TrafficFlowObserved",
            intensity={"type": "Property", "value": 640, "observedAt": "2026-11-30T07:10:00Z"},
        )
        cb.replace_existing_attributes_of_entity(e)
        return dump(cb.get_entity(TF + "norodom"))

    step("replace_attrs", replace_attrs)

    def append_attrs() -> Any:  # POST /entities/{id}/attrs?options=noOverwrite
        e = ContextLDEntity(
            id=TF + "norodom",
            type="TrafficFlowObserved",
            intensity={"type": "Property", "value": 1},
            congested={"type": "Property", "value": True},
        )
        cb.append_entity_attributes(e, options="noOverwrite")
        return dump(cb.get_entity(TF + "norodom"))

    step("append_attrs_no_overwrite", append_attrs)

    def batch_upsert() -> Any:  # POST /entityOperations/upsert?options=update
        return batch(
            ActionTypeLD.UPSERT,
            [
                flow("monivong", 910, 104.9170, 11.5680, "2026-11-30T07:20:00Z"),
                flow("street-63", 300, 104.9200, 11.5720, "2026-11-30T07:20:00Z"),
            ],
            "update",
        )

    step("batch_upsert", batch_upsert)

    def override() -> Any:  # filip's upsert with options=replace
        cb.override_entities([flow("street-154", 120, 104.9280, 11.5630, "2026-11-30T07:30:00Z")])
        return dump(cb.get_entity(TF + "street-154"))

    step("override_entities", override)

    def batch_update() -> Any:
        e = ContextLDEntity(
            id=TF + "monivong",
            type="TrafficFlowObserved",
            intensity={"type": "Property", "value": 990, "observedAt": "2026-11-30T07:40:00Z"},
        )
        cb.entity_batch_operation(entities=[e], action_type=ActionTypeLD.UPDATE)
        return dump(cb.get_entity(TF + "monivong"))

    step("batch_update", batch_update)

    # -- temporal: filip has no NGSI-LD temporal client; its HTTP client with its headers --
    def temporal(path: str, params: dict[str, str]) -> Any:
        r = cb.get(
            url=f"{base}/ngsi-ld/v1/temporal/entities{path}",
            params=params,
            headers=cb.headers.copy(),
        )
        r.raise_for_status()
        return r.json()

    step(
        "temporal_entity",
        lambda: temporal(f"/{TF}monivong", {"attrs": "intensity", "options": "temporalValues"}),
    )
    step(
        "temporal_query",
        lambda: temporal(
            "",
            {
                "type": "TrafficFlowObserved",
                "attrs": "intensity",
                "timerel": "after",
                "timeAt": T0,
                "lastN": "1",
            },
        ),
    )

    # -- delete ----------------------------------------------------------------------------
    def delete_attribute() -> Any:
        cb.delete_attribute(TF + "norodom", "congested")
        return dump(cb.get_entity(TF + "norodom"))

    step("delete_attribute", delete_attribute)

    def delete_entity() -> Any:
        cb.delete_entity_by_id(TF + "street-13")
        return _status_of(lambda: cb.get_entity(TF + "street-13"))

    step("delete_entity", delete_entity)
    step(
        "batch_delete",
        lambda: batch(
            ActionTypeLD.DELETE,
            [flow("street-63", 0, 0, 0), flow("street-154", 0, 0, 0)],
        ),
    )

    # -- a second subscription to pause and delete (pending notifications of the first one
    # would be dropped with it: it stays) ---------------------------------------------------
    def second_subscription() -> Any:
        sub = SubscriptionLD(
            description="speeds, paused then deleted",
            entities=[EntityInfo(type="TrafficFlowObserved")],
            watchedAttributes=["averageVehicleSpeed"],
            notification=NotificationParams(
                attributes=["averageVehicleSpeed"],
                endpoint=Endpoint(uri=args["webhook"] + "?speeds", accept="application/json"),
            ),
        )
        sid = cb.post_subscription(sub)
        before = sorted(s.id for s in cb.get_subscription_list())
        paused = cb.get_subscription(sid)
        paused.isActive = False
        cb.update_subscription(paused)  # PATCH with the whole subscription, as filip does
        after_update = dump(cb.get_subscription(sid))
        cb.delete_subscription(sid)
        return {
            "id": sid,
            "listed": before,
            "updated": after_update,
            "left": [s.id for s in cb.get_subscription_list()],
            "deleted_get": _status_of(lambda: cb.get_subscription(sid)),
        }

    step("second_subscription", second_subscription)

    out["wire"] = WIRE
    with open(args["out"], "w") as fh:
        json.dump(out, fh, default=str)


def _status_of(fn: Callable[[], Any], body: bool = False) -> Any:
    """The HTTP status of the error a filip call raises (None when it does not raise), with
    the problem details the hub sent if ``body``."""
    try:
        fn()
    except requests.RequestException as exc:
        if exc.response is None:
            raise
        if body:
            return {"status": exc.response.status_code, "problem": exc.response.json()}
        return exc.response.status_code
    return None


if __name__ == "__main__":
    main()

"""HubClient: a service's in-process view of the hub, subscriptions included."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.errors import BadRequestData, ResourceNotFound
from cityos.hub.store.sqlite import SqliteStore
from cityos.web.app import create_app

CTX = {"Bus": "https://example.org/Bus", "delay": "https://example.org/delay"}


def test_in_process_client_and_subscription(tmp_path) -> None:
    settings = Settings(notify_poll_s=0.05)
    hub = Hub(settings, store=SqliteStore(tmp_path / "c.db"))
    client = HubClient(hub, context=CTX)
    got: list[dict] = []
    with TestClient(create_app(settings, hub)) as http:  # runs the delivery worker
        sid = client.subscribe(
            got.append,
            entity_type="Bus",
            watched_attributes=["delay"],
            q="delay>60",
            fmt="keyValues",
        )
        client.create(
            {"id": "urn:ngsi-ld:Bus:7", "type": "Bus", "delay": {"type": "Property", "value": 30}}
        )
        client.update_attrs("urn:ngsi-ld:Bus:7", {"delay": {"type": "Property", "value": 120}})
        deadline = time.monotonic() + 5
        while not got:
            assert time.monotonic() < deadline, "no in-process notification"
            time.sleep(0.05)
        assert got[0]["data"] == [{"id": "urn:ngsi-ld:Bus:7", "type": "Bus", "delay": 120}]
        assert len(got) == 1  # the first write (delay 30) did not match q
        # the same entity, through the HTTP API with the same context, reads the same
        assert client.get("urn:ngsi-ld:Bus:7", fmt="keyValues")["delay"] == 120
        assert [e["id"] for e in client.query(type="Bus", q="delay>100")] == ["urn:ngsi-ld:Bus:7"]
        sub = http.get(f"/ngsi-ld/v1/subscriptions/{sid}").json()
        assert sub["notification"]["timesSent"] >= 1
        client.unsubscribe(sid)
        assert http.get(f"/ngsi-ld/v1/subscriptions/{sid}").status_code == 404
        with pytest.raises(ResourceNotFound):
            client.get("urn:ngsi-ld:Bus:404")
        with pytest.raises(BadRequestData):
            client.subscribe(got.append, entity_type="Bus", q="delay>>1")

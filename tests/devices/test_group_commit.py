"""Group commit: a run of device messages applied in one transaction keeps every reading in
history, notifies every change in order, and a bad message spoils nothing else."""

from __future__ import annotations

from cityos.config import Settings
from cityos.devices.agent import Agent
from cityos.devices.mqtt import handle_many
from cityos.hub.client import HubClient


def test_a_run_of_messages_in_one_transaction(hub_factory) -> None:
    hub = hub_factory(Settings(device_rate_per_s=0))
    hub.store.migrate()
    agent = Agent(hub)
    temperature = [{"object_id": "temperature", "name": "temperature", "type": "Number"}]
    agent.add_group(
        "", {"apikey": "k", "entity_type": "WeatherObserved", "attributes": temperature}
    )
    agent.add_device("", {"device_id": "w1", "entity_name": "urn:ngsi-ld:WeatherObserved:w1"})
    agent.add_device("", {"device_id": "w2", "entity_name": "urn:ngsi-ld:WeatherObserved:w2"})
    HubClient(hub).subscribe(  # delivered by no one here: read back from the outbox
        lambda n: None,
        entity_type="WeatherObserved",
        watched_attributes=["temperature"],
        fmt="keyValues",
    )
    messages = [
        ("/k/w1/attrs", b"2026-11-30T01:00:00Z|temperature|30"),  # creates w1
        ("/k/w1/attrs", b"2026-11-30T01:01:00Z|temperature|31"),
        ("/k/w2/attrs", b"temperature|29.5"),
        ("/k/w2/attrs", b"not|an|ultralight|line|"),  # malformed: counted, dropped
        ("/k/nobody/attrs", b"temperature|1"),  # unknown device: counted, dropped
        ("/k/w1/attrs", b'{"temperature": 32, "TimeInstant": "2026-11-30T01:02:00Z"}'),
    ]
    batches = []
    original = hub.entities.apply_measures
    hub.entities.apply_measures = lambda t, w: batches.append(len(w)) or original(t, w)  # type: ignore[method-assign]
    assert handle_many(agent, messages) == 4
    assert batches == [4]  # one transaction for the four good readings
    history = hub.store.history("", "urn:ngsi-ld:WeatherObserved:w1")
    temps = [r.instance["value"] for r in history if r.attr.endswith("temperature")]
    assert temps == [30, 31, 32]
    assert hub.store.get_entity("", "urn:ngsi-ld:WeatherObserved:w2") is not None
    assert agent.device_stats("", "w2")["rejected"] == 1
    assert agent.device_stats("", "nobody")["rejected"] == 1
    claimed = hub.store.claim_deliveries("t", "2999-01-01T00:00:00Z", "2999-01-01T00:01:00Z")
    sent = [
        (e["id"][-2:], e["temperature"]) for n in claimed.notifications for e in n.payload["data"]
    ]
    assert sent == [("w1", 30), ("w1", 31), ("w2", 29.5), ("w1", 32)]
    hub.close()

"""HubClient.delete: an entity, and with history=True its history too (what erasure needs)."""

from __future__ import annotations

import pytest

from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.errors import ResourceNotFound

EID = "urn:ngsi-ld:Thing:1"


def _thing(client: HubClient) -> None:
    client.create({"id": EID, "type": "Thing", "v": {"type": "Property", "value": 1}})
    client.update_attrs(EID, {"v": {"type": "Property", "value": 2}})


def test_a_plain_delete_keeps_the_history(client: HubClient, hub: Hub) -> None:
    _thing(client)
    client.delete(EID)
    with pytest.raises(ResourceNotFound):
        client.get(EID)
    assert hub.store.history("", EID, None, 100)  # as DELETE /entities/{id} leaves it


def test_delete_with_history_leaves_nothing(client: HubClient, hub: Hub) -> None:
    _thing(client)
    client.delete(EID, history=True)
    assert hub.store.history("", EID, None, 100) == []
    with pytest.raises(ResourceNotFound):
        client.history(EID, "v")


def test_deleting_what_is_not_there(client: HubClient) -> None:
    with pytest.raises(ResourceNotFound, match="not found"):
        client.delete(EID, history=True)

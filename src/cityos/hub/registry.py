"""Names under which the hub keeps what the IoT agent provisions: the registry kinds of
service groups and devices, and the id of the FIWARE ``Device`` entity that holds a
device's counters. They live here, below both the IoT agent (:mod:`cityos.devices`) and
security (API keys bound to a device, detection naming a device), so neither has to import
the other to name the same thing.
"""

from __future__ import annotations

from urllib.parse import quote

GROUP, DEVICE = "iot-group", "iot-device"  # registry kinds (Store.put_doc / get_doc)
_URN_SAFE = ":@!$&'()*+,;=-._~"  # kept as is in the Device entity id; the rest %-encoded


def device_entity_id(device_id: str) -> str:
    """The Device entity holding a device's counters: ``urn:ngsi-ld:Device:<device_id>``."""
    return "urn:ngsi-ld:Device:" + quote(device_id, safe=_URN_SAFE)

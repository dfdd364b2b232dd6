"""What device commands need from the IoT agent: its provisioned devices and groups.

:class:`~cityos.devices.agent.Agent` provisions devices and builds their
:class:`~cityos.devices.commands.Commands`; the commands only look devices up. This
protocol is that lookup, so ``commands`` depends on it rather than on the agent (the agent
imports ``commands``; ``commands`` never imports the agent: no import cycle).
"""

from __future__ import annotations

from typing import Any, Protocol

from cityos.hub.core import Hub
from cityos.hub.ldcontext import Context


class DeviceBook(Protocol):
    """The provisioned devices and service groups of a hub, as the agent keeps them."""

    DEVICE: str  # the registry kind of a device's document
    hub: Hub
    ctx: Context

    def group_of(
        self, tenant: str, device: dict[str, Any], apikey: str | None = None
    ) -> dict[str, Any] | None:
        """The device's service group (by API key, the device's own, or the only one)."""

    def device_and_group(
        self, tenant: str, apikey: str, device_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The device and its group; ResourceNotFound when either is unknown."""

    def command_names(self, device: dict[str, Any], group: dict[str, Any] | None) -> list[str]:
        """The commands the device (or its group) declares, in order, once each."""

    def entity_of(self, device: dict[str, Any], group: dict[str, Any] | None) -> tuple[str, str]:
        """The (id, type) of the entity a device's measures update."""

    def static_attrs(self, device: dict[str, Any], group: dict[str, Any] | None) -> dict[str, Any]:
        """The group's, then the device's, static attributes as NGSI-LD."""

    def parse_entity(self, body: dict[str, Any]) -> Any:
        """An NGSI-LD entity body parsed in the agent's @context."""

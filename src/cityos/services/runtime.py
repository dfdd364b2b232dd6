"""What CityOS hands each registered service when it runs: a :class:`ServiceContext` with
an in-process :class:`~cityos.hub.client.HubClient` and the service's own settings."""

from __future__ import annotations

from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.services.base import Service, ServiceContext
from cityos.services.settings import settings_of


def context_for(service: Service, hub: Hub) -> ServiceContext:
    """The context of ``service`` over ``hub``; a bad setting raises ValueError (one line)."""
    return ServiceContext(
        name=service.name,
        client=HubClient(hub),
        settings=settings_of(service, hub.settings),
        core=hub.settings,
    )


def contexts_for(services: tuple[Service, ...], hub: Hub) -> dict[str, ServiceContext]:
    return {service.name: context_for(service, hub) for service in services}

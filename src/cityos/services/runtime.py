"""What CityOS hands each registered service when it runs: a :class:`ServiceContext` with
an in-process :class:`~cityos.hub.client.HubClient` and the service's own settings."""

from __future__ import annotations

from typing import Any

from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.plug import Service, ServiceContext
from cityos.services.settings import settings_of


def context_for(service: Service, hub: Hub, app: Any = None) -> ServiceContext:
    """The context of ``service`` over ``hub``; a bad setting raises ValueError (one line).
    ``app`` (the web application's state) reaches built-in parts only."""
    return ServiceContext(
        name=service.name,
        client=HubClient(hub),
        settings=settings_of(service, hub.settings),
        core=hub.settings,
        app=app if service.builtin else None,
    )


def contexts_for(
    services: tuple[Service, ...], hub: Hub, app: Any = None
) -> dict[str, ServiceContext]:
    return {service.name: context_for(service, hub, app) for service in services}

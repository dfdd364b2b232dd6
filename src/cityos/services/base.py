"""The declaration a service makes: see :mod:`cityos.plug` (kept here for the services'
own imports: ``from cityos.services.base import Service``)."""

from cityos.plug import Check, Service, ServiceContext

__all__ = ["Check", "Service", "ServiceContext"]

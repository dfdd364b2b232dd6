"""What a service needs of the plug (re-exported so a service names it through its layer's
own imports: ``from cityos.services.base import Service``)."""

from cityos.plug import Check, FormError, Page, Panel, Service, ServiceContext

__all__ = ["Check", "FormError", "Page", "Panel", "Service", "ServiceContext"]

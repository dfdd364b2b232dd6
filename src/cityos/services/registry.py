"""The services this installation runs; the web app mounts each one's routes."""

from __future__ import annotations

from cityos.services.base import Service
from cityos.services.traffic import SERVICE as TRAFFIC

SERVICES: tuple[Service, ...] = (TRAFFIC,)

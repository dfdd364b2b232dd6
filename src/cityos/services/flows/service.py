"""The plug: what the flows service declares to CityOS (``SERVICE``).

Registered in pyproject.toml under the ``cityos.services`` entry points
(``flows = "cityos.services.flows.service:SERVICE"``). Under ``cityos serve`` its task
rebuilds today's crowd levels, alerts, dwell times and forecast; its routes serve the
privacy report and the DP releases; its CLI (:mod:`.cli`) does the same from a shell.
Its settings are :class:`FlowsSettings` (``[services.flows]``, ``CITYOS_FLOWS_*``); the
pseudonymisation key and time zone are the privacy layer's (``CITYOS_PRIVACY_*``).
"""

from __future__ import annotations

from typing import Any

from cityos.plug import Check, Service, ServiceContext

from . import api
from .cli import app as cli_app
from .entities import ALERT, COMMUTER, COUNT, DWELL, FORECAST, LEVEL, ZONE
from .pages import pages
from .service_settings import FlowsSettings
from .task import run_flows

__all__ = ["SERVICE", "FlowsSettings"]


def health(ctx: ServiceContext) -> dict[str, Any]:
    status = str(ctx.state.get("status", "starting"))
    return {
        "status": "error" if status.startswith("error") else "ok",
        "build": status,
        "last": ctx.state.get("last"),
    }


def diagnostics(ctx: ServiceContext) -> list[Check]:
    settings: FlowsSettings = ctx.settings  # the key itself: the privacy part's check
    return [
        Check(
            "crowding alert ratio",
            0 < settings.alert_ratio <= 2,
            str(settings.alert_ratio),
            "set CITYOS_FLOWS_ALERT_RATIO between 0 and 2 (0.9: 90% of capacity)",
        ),
        Check(
            "forecast smoothing weight",
            0 < settings.forecast_alpha <= 1,
            str(settings.forecast_alpha),
            "set CITYOS_FLOWS_FORECAST_ALPHA in (0, 1]",
        ),
    ]


SERVICE = Service(
    name="flows",
    reads=(ZONE, COUNT, COMMUTER, LEVEL, "PrivacyDataset", "PrivacyBudgetEntry", "PrivacyAction"),
    writes=(
        ZONE,
        COUNT,
        COMMUTER,
        LEVEL,
        ALERT,
        FORECAST,
        DWELL,
        "PrivacyDataset",
        "PrivacyBudgetEntry",
    ),  # fmt: skip
    routes=api.routes,
    kpis=("peak_occupancy", "crowding_alerts", "od_release_mae"),
    cli=cli_app,
    openapi=api.openapi,
    tasks=(run_flows,),
    health=health,
    settings=FlowsSettings,
    diagnostics=diagnostics,
    pages=pages,
)

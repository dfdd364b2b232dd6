"""What runs under ``cityos serve``: today's crowd levels, alerts, dwell times and forecast,
rebuilt every ``interval_s`` from what the hub holds. With no zone registered it idles and
says so in /health."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cityos.privacy import load_settings

from .daybuild import build_day
from .days import local_day
from .errors import NoZones
from .service_settings import FlowsSettings


def flows_client(ctx: Any) -> Any:
    settings: FlowsSettings = ctx.settings
    return ctx.client.for_tenant(settings.tenant) if settings.tenant else ctx.client


def build_now(ctx: Any) -> dict[str, Any]:
    """Build today (local) up to now; what /health shows."""
    tz = ZoneInfo(load_settings(ctx.core).timezone)
    now = datetime.now(UTC)
    built = build_day(flows_client(ctx), local_day(now, tz), tz, ctx.settings, now=now)
    return {"day": built.day, "alerts": built.alerts, "zones": built.zones}


async def run_flows(ctx: Any) -> None:
    settings: FlowsSettings = ctx.settings
    if settings.interval_s <= 0:
        ctx.state["status"] = "off"
        return
    while True:
        try:
            ctx.state["last"] = await asyncio.to_thread(build_now, ctx)
            ctx.state["status"] = "ok"
        except asyncio.CancelledError:
            raise
        except NoZones:
            ctx.state["status"] = "idle: no FlowZone registered"
        except Exception as exc:  # reported in /health, tried again next interval
            ctx.state["status"] = f"error: {exc}"
        await asyncio.sleep(settings.interval_s)

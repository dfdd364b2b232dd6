"""The flows plug: its settings as CityOS reads them, its task, health and checks."""

from __future__ import annotations

import asyncio

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.plug import ServiceContext
from cityos.services.flows import SERVICE, FlowsSettings, ZoneMap
from cityos.services.flows.service import diagnostics, health
from cityos.services.flows.task import run_flows
from cityos.services.settings import settings_of

from .conftest import KEY


def test_settings_from_the_environment() -> None:
    core = Settings(environ={"CITYOS_FLOWS_ALERT_RATIO": "0.8", "CITYOS_FLOWS_INTERVAL_S": "60"})
    settings = settings_of(SERVICE, core)
    assert settings == FlowsSettings(alert_ratio=0.8, interval_s=60)


def _ctx(client: HubClient, **env: str) -> ServiceContext:
    core = Settings(environ={"CITYOS_PRIVACY_KEY": KEY, **env})
    return ServiceContext("flows", client, settings_of(SERVICE, core), core)


def _one_round(ctx: ServiceContext) -> None:
    async def run() -> None:
        task = asyncio.create_task(run_flows(ctx))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if "status" in ctx.state:
                break
        task.cancel()

    asyncio.run(run())


def test_the_task_idles_without_zones_then_builds_today(client: HubClient) -> None:
    ctx = _ctx(client)
    _one_round(ctx)
    assert ctx.state["status"].startswith("idle: no FlowZone")
    assert health(ctx)["status"] == "ok"


def test_the_task_builds_today(client: HubClient, zones: ZoneMap) -> None:
    ctx = _ctx(client)
    _one_round(ctx)
    assert ctx.state["status"] == "ok", ctx.state
    assert ctx.state["last"]["zones"] == 8
    assert client.count(type="CrowdLevel") >= 8


def test_checks(client: HubClient) -> None:
    checks = {c.name: c for c in diagnostics(_ctx(client))}
    assert all(c.ok for c in checks.values())
    bad = ServiceContext("flows", client, FlowsSettings(alert_ratio=5), Settings())
    checks = {c.name: c for c in diagnostics(bad)}
    assert not checks["crowding alert ratio"].ok

"""The traffic service's background task under ``cityos serve``: signal control over the hub.

Every ``step_s`` seconds it reads the TrafficFlowObserved and TrafficSignal entities of the
junctions named in the signals file (setting ``signals``) through the service's
:class:`~cityos.hub.client.HubClient`, asks the controller, and writes each decision as the
``setPhase`` command of the junction's TrafficSignal entity; the hub turns that into a
device command for the cabinet (MQTT or HTTP), as in :mod:`.sim.hubloop` — the same
:class:`~.signalservice.HubSignalService`, on the wall clock instead of a simulated one.
With no signals configured it does nothing, and health says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .controllers import make_controller
from .errors import TrafficError
from .signalfile import read_signals
from .signalservice import HubSignalService, sim_seconds, wiring_for

log = logging.getLogger("cityos.services.traffic.task")


@dataclass
class Status:
    """What the task last did, for ``/health``."""

    state: str = "starting"  # starting | idle | running | error
    detail: str = ""
    signals: int = 0
    steps: int = 0
    commands: int = 0
    last_decision: float | None = None  # wall clock (time.time()) of the last command written


def status_of(ctx: Any) -> Status:
    """The task's status, kept in the context's own state (a fresh one before it starts)."""
    status: Status = ctx.state.setdefault("status", Status())
    return status


def now_seconds() -> float:
    """The wall clock on the controllers' scale (seconds, as :func:`.sim_seconds` counts)."""
    return sim_seconds(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


async def run_signals(ctx: Any) -> None:
    """The background task: see the module docstring. Returns at once when no signals are
    configured; a bad signals file or controller is reported in health and ends it."""
    settings = ctx.settings
    status = status_of(ctx)
    if not settings.signals:
        status.state, status.detail = "idle", "no signals configured"
        return
    try:
        layouts = read_signals(Path(settings.signals))
        controller = make_controller(settings.controller, network=settings.network or None)
        if controller.native_program is not None:
            raise TrafficError(
                f"controller {settings.controller!r} runs inside SUMO only; "
                "choose one that decides per step (max-pressure, cityos)"
            )
    except TrafficError as exc:
        status.state, status.detail = "error", str(exc)
        log.error("traffic signal service not started: %s", exc)
        return
    client = ctx.client.for_tenant(settings.tenant) if settings.tenant else ctx.client
    service = HubSignalService(
        client.for_context(settings.context or None),
        wiring_for(layouts),
        layouts,
        alerts=client,
    )
    controller.setup(layouts, settings.step_s)
    status.signals = len(service.wiring.signal_device)
    status.state, status.detail = "running", f"{status.signals} signals"
    while True:
        try:
            await asyncio.to_thread(_step, service, controller, status)
        except Exception as exc:  # the hub unreachable for a moment: try again next step
            status.detail = f"last step failed: {exc}"
            log.exception("traffic signal step failed")
        await asyncio.sleep(settings.step_s)


def _step(service: HubSignalService, controller: Any, status: Status) -> None:
    """One control step: observations from the hub, decisions back as commands."""
    now = now_seconds()
    seen = service.observations()
    decisions = [controller.decide(obs, now) for obs in seen.values()]
    sent = service.command(d for d in decisions if d is not None)
    status.steps += 1
    if sent:
        status.commands += sent
        status.last_decision = time.time()
    status.detail = f"{status.signals} signals, {len(seen)} reporting"

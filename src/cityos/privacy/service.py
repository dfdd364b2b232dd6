"""The privacy layer's plug: ``cityos privacy``, its settings (``CITYOS_PRIVACY_*``), the
retention job under ``cityos serve``, its health and ``cityos doctor`` checks.

Registered like every part (``privacy = "cityos.privacy.service:SERVICE"`` in the
``cityos.services`` entry points); it declares no routes of its own — the flows service
serves the privacy report over HTTP.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from cityos.plug import Check, Service, ServiceContext

from . import actions, datasets, ledger
from .cli import app as cli_app
from .errors import MissingKey
from .pseudonym import ROTATIONS, Pseudonymiser
from .settings import KEY_HINT, PrivacySettings


def _client(ctx: ServiceContext) -> Any:
    settings: PrivacySettings = ctx.settings
    return ctx.client.for_tenant(settings.tenant) if settings.tenant else ctx.client


async def run_retention_job(ctx: ServiceContext) -> None:
    """Delete data past its retention every ``retention_interval_s``, for as long as CityOS
    serves; what it did is in /health (and, per deletion, a PrivacyAction)."""
    from .retention import run_retention

    settings: PrivacySettings = ctx.settings
    if settings.retention_interval_s <= 0:
        ctx.state["retention"] = "off"
        return
    client = _client(ctx)
    while True:
        try:
            results = await asyncio.to_thread(run_retention, client)
            ctx.state["retention"] = "ok"
            ctx.state["last_deleted"] = sum(r.deleted for r in results)
            ctx.state["last_run"] = actions.hub_time(datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported in /health, tried again next interval
            ctx.state["retention"] = f"error: {exc}"
        await asyncio.sleep(settings.retention_interval_s)


def health(ctx: ServiceContext) -> dict[str, Any]:
    settings: PrivacySettings = ctx.settings
    state = ctx.state.get("retention", "starting")
    keyed = True
    try:
        Pseudonymiser.from_settings(settings)
    except (MissingKey, ValueError):
        keyed = False
    return {
        "status": "error" if str(state).startswith("error") else "ok",
        "retention": state,
        "lastRun": ctx.state.get("last_run"),
        "lastDeleted": ctx.state.get("last_deleted", 0),
        "pseudonymKey": "configured" if keyed else "missing",
    }


def diagnostics(ctx: ServiceContext) -> list[Check]:
    settings: PrivacySettings = ctx.settings
    try:
        Pseudonymiser.from_settings(settings)
        key_ok, detail = True, f"rotation {settings.rotation}, {settings.timezone}"
    except (MissingKey, ValueError) as exc:
        # no key at all is a choice (no personal data is taken in: taps and Wi-Fi refused),
        # not a fault; a key that is set but too short is one
        key_ok = not settings.key
        detail = (
            "not set: personal data (taps, Wi-Fi) is refused until it is"
            if key_ok
            else str(exc).split(":")[0]
        )
    return [
        Check("pseudonymisation key", key_ok, detail, KEY_HINT),
        Check(
            "pseudonym rotation",
            settings.rotation in ROTATIONS,
            settings.rotation,
            f"set CITYOS_PRIVACY_ROTATION to {' or '.join(ROTATIONS)}",
        ),
    ]


SERVICE = Service(
    name="privacy",
    reads=(datasets.TYPE, ledger.TYPE, actions.TYPE),
    writes=(datasets.TYPE, ledger.TYPE, actions.TYPE),
    cli=cli_app,
    tasks=(run_retention_job,),
    health=health,
    settings=PrivacySettings,
    diagnostics=diagnostics,
)

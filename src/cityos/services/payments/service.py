"""The plug: what the payments service declares to CityOS (``SERVICE``) and its settings.

Registered in pyproject.toml under the ``cityos.services`` entry points as
``payments = "cityos.services.payments.service:SERVICE"``: its routes (:mod:`.api`), its
CLI group ``cityos pay`` (:mod:`.cli`), a background task that publishes each stop's fares
into the hub and expires stale reservations, its health and ``cityos doctor`` checks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from cityos.services.base import Check, Service

from . import api
from .cli import app as cli_app
from .model import SUMMARY_TYPE
from .pages import pages
from .runtime import PaymentsSettings

log = logging.getLogger("cityos.services.payments")


# -- the task ------------------------------------------------------------------------------
def publish_once(ctx: Any, day: str | None = None) -> int:
    """Write each stop's fares of ``day`` (local; today when None) into the hub as
    ``FareCollectionObserved`` entities, through the service's client; first post the
    journeys never tapped out (their maximum), void the pending transfers past their
    timeout and forget expired ticket nonces. How many entities."""
    from .runtime import payments_of
    from .taps import stop_days

    settings: PaymentsSettings = ctx.settings
    parts = payments_of(ctx)
    ledger = parts.ledger(settings.tenant)
    parts.collector(settings.tenant).close_stale()  # journeys never tapped out pay the maximum
    ledger.expire_pending()
    with ledger.db.transaction() as tx:
        tx.execute(
            "DELETE FROM pay_nonces WHERE tenant = ? AND expires_at < ?",
            (settings.tenant, int(time.time())),
        )
    tz = parts.tariff.zone_info()
    day = day or datetime.now(tz).date().isoformat()
    entities = [s.to_entity(parts.tariff.timezone) for s in stop_days(ledger, parts.tariff, day)]
    if entities:
        client = ctx.client.for_tenant(settings.tenant) if settings.tenant else ctx.client
        client.upsert(entities)
    return len(entities)


async def run_publisher(ctx: Any) -> None:
    """Under ``cityos serve``: publish the day's fares every ``publish_interval_s`` (and
    yesterday's last figures once the day has turned), the first time one interval after
    the start."""
    settings: PaymentsSettings = ctx.settings
    if settings.publish_interval_s <= 0:
        ctx.state["task"] = "idle: publish_interval_s is 0"
        return
    last_day = None
    ctx.state["task"] = "waiting for its first publication"
    while True:
        # first wait: a server that only lives a moment (a test, a demo) touches nothing
        await asyncio.sleep(settings.publish_interval_s)
        try:
            tz = await asyncio.to_thread(_tariff_zone, ctx)
            today = datetime.now(tz).date()
            if last_day is not None and last_day != today:  # the day turned: close it
                await asyncio.to_thread(publish_once, ctx, last_day.isoformat())
            n = await asyncio.to_thread(publish_once, ctx, today.isoformat())
            last_day = today
            ctx.state.update(task="running", published=n, last_publish=time.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported in /health, logged once per failure
            if ctx.state.get("task") != f"error: {exc}":
                log.exception("payments: publishing the stops' fares failed")
            ctx.state["task"] = f"error: {exc}"


def _tariff_zone(ctx: Any) -> Any:
    from .runtime import payments_of

    return payments_of(ctx).tariff.zone_info()


def health(ctx: Any) -> dict[str, Any]:
    """The task's state and when it last published; the ledger only if already opened."""
    state = ctx.state.get("task", "starting")
    out: dict[str, Any] = {
        "status": "error" if str(state).startswith("error") else "ok",
        "task": state,
        "published": ctx.state.get("published", 0),
        "last_publish_age_s": None,
        "ledger": "open" if "payments" in ctx.state else "not opened yet",
    }
    if ctx.state.get("last_publish"):
        out["last_publish_age_s"] = round(time.time() - ctx.state["last_publish"], 1)
    return out


def diagnostics(ctx: Any) -> list[Check]:
    """``cityos doctor``: the tariff, the keys, the ledger's database and its books."""
    from .fares import FareError, load_tariff
    from .ledger import Ledger
    from .ledger_sql import Database
    from .runtime import database_url

    settings: PaymentsSettings = ctx.settings
    checks = []
    try:
        tariff = load_tariff(settings.tariff or None)
        checks.append(Check("tariff", True, f"{len(tariff.products)} products, "
                            f"{len(tariff.stops)} stops, {tariff.currency}"))  # fmt: skip
    except FareError as exc:
        checks.append(
            Check("tariff", False, str(exc), "fix the file services.payments.tariff names")
        )
    for name, path in (("ticket key", settings.ticket_key_path),
                       ("pseudonym key", settings.pseudonym_key_path)):  # fmt: skip
        p = Path(path)
        there = p.exists()
        checks.append(Check(name, True, f"{p}" + ("" if there else " (made on first use)")))
    url = database_url(settings, ctx.core)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        # a doctor looks and makes nothing: the ledger's file is made on first use
        return [*checks, Check("ledger database", True, f"{url} does not exist yet")]
    try:
        db = Database(url, schema=settings.database_schema or None)
    except Exception as exc:
        return [*checks, Check("ledger database", False, f"{type(exc).__name__}: {exc}",
                               "check CITYOS_DATABASE_URL (or services.payments.database_url)")]  # fmt: skip
    try:
        problems = Ledger(db, settings.tenant).check()
        checks.append(Check("ledger database", True, re.sub(r"//[^@/]*@", "//", url)))
        checks.append(Check("ledger books balance", not problems, "; ".join(problems[:3]) or
                            "every currency sums to zero", "see cityos pay ledger check"))  # fmt: skip
    finally:
        db.close()
    return checks


# -- OpenAPI ---------------------------------------------------------------------------------
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
_TENANT = {
    "name": "NGSILD-Tenant",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
}
_AMOUNT = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$",
           "description": "In the currency's major unit, as a decimal string"}  # fmt: skip
_TRANSFER = {
    "type": "object",
    "required": ["debit", "credit", "currency"],
    "properties": {
        "id": {"type": "string", "maxLength": 128, "description": "The idempotency key"},
        "debit": {"type": "string"}, "credit": {"type": "string"},
        "amount": _AMOUNT, "amount_minor": {"type": "integer", "minimum": 1},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "pending": {"type": "boolean"}, "reference": {"type": "string", "maxLength": 64},
        "memo": {"type": "string", "maxLength": 256},
        "timeout_s": {"type": "integer", "minimum": 0},
    },
}  # fmt: skip
_BODIES: dict[str, dict[str, Any]] = {
    "/qr": {"type": "object", "required": ["scheme"], "properties": {
        "scheme": {"type": "string", "enum": ["khqr", "promptpay", "vietqr", "qris",
                                              "duitnow", "qrph", "paynow"]},
        "fields": {"type": "object", "description": "The scheme encoder's arguments"}}},
    "/decode": {"type": "object", "required": ["payload"],
                "properties": {"payload": {"type": "string", "maxLength": 512}}},
    "/fares/quote": {"type": "object", "required": ["taps"], "properties": {
        "final": {"type": "boolean"},
        "taps": {"type": "array", "maxItems": 10000, "items": {
            "type": "object", "required": ["at", "stop", "product"], "properties": {
                "rider": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                "stop": {"type": "string"}, "product": {"type": "string"},
                "kind": {"type": "string", "enum": ["in", "out"]},
                "concession": {"type": "string"}}}}}},
    "/taps": {"type": "object", "required": ["id", "stop", "product"], "properties": {
        "id": {"type": "string", "maxLength": 100}, "stop": {"type": "string"},
        "product": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
        "kind": {"type": "string", "enum": ["in", "out"]},
        "medium": {"type": "string", "enum": ["ticket", "account", "emvco", "cash"]},
        "ticket": {"type": "string"}, "account": {"type": "string"}, "rider": {"type": "string"},
        "concession": {"type": "string"}, "to_stop": {"type": "string"},
        "reference": {"type": "string"}, "terminal": {"type": "string"}}},
    "/tickets": {"type": "object", "required": ["account"], "properties": {
        "account": {"type": "string"}, "concession": {"type": "string"}}},
    "/accounts": {"type": "object", "required": ["id", "currency"], "properties": {
        "id": {"type": "string", "maxLength": 128},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "kind": {"type": "string", "enum": ["rider", "operator", "city", "settlement",
                                            "merchant"]},
        "overdraft_limit": {"oneOf": [_AMOUNT, {"type": "null"}]}}},
    "/transfers": {"oneOf": [_TRANSFER, {"type": "object", "required": ["transfers"],
                                         "properties": {"atomic": {"type": "boolean"},
                                                        "transfers": {"type": "array",
                                                                      "items": _TRANSFER}}}]},
    "/transfers/{transfer_id}/post": {"type": "object", "properties": {
        "amount": _AMOUNT, "amount_minor": {"type": "integer", "minimum": 1}}},
}  # fmt: skip
_IMAGES = {
    "application/json": {"schema": {"type": "object"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/svg+xml": {"schema": {"type": "string"}},
}


def _openapi() -> dict[str, Any]:
    """The path items of the routes in api.py, merged into ``/openapi.json``."""
    paths: dict[str, Any] = {}
    for path, method, fn, summary in api.ROUTES:
        params: list[dict[str, Any]] = [_TENANT]
        for name in re.findall(r"{(\w+)}", path):
            params.append({"name": name, "in": "path", "required": True,
                           "schema": {"type": "string", "maxLength": 128}})  # fmt: skip
        if path in ("/qr", "/tickets"):
            params.append({"name": "format", "in": "query", "required": False,
                           "schema": {"type": "string", "enum": ["json", "png", "svg"]}})  # fmt: skip
        ok = (
            _IMAGES
            if path in ("/qr", "/tickets")
            else {"application/json": {"schema": {"type": "object"}}}
        )
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": fn.__name__,
            "parameters": params,
            "responses": {
                "200": {"description": "OK (the same request again: the first answer)",
                        "content": ok},
                **({"201": {"description": "Created", "content": ok}} if method == "POST" else {}),
                **{code: {"description": desc, "content": _PROBLEM} for code, desc in (
                    ("400", "Bad input (the problem names the field or the QR tag); nothing written"),
                    ("401", "No valid credentials (when authentication is required)"),
                    ("403", "The roles may not do this (FareLedger grants the ledger)"),
                    ("404", "Unknown account, transfer, or tenant"),
                    ("409", "An idempotency key reused with other content"),
                    ("413", "The body is over the size limit"),
                    ("415", "The body is not JSON (Content-Type)"),
                    ("422", "Refused by the ledger (insufficient funds, a transfer's state)"),
                    ("429", "Too many requests (rate limit)"),
                )},
            },
        }  # fmt: skip
        if path in _BODIES:
            operation["requestBody"] = {
                "required": path != "/transfers/{transfer_id}/post",
                "content": {"application/json": {"schema": _BODIES[path]}},
            }
        paths.setdefault(api.BASE + path, {})[method.lower()] = operation
    return paths


SERVICE = Service(
    name="payments",
    reads=(),
    writes=(SUMMARY_TYPE,),
    routes=api.routes,
    kpis=("cashless_share", "fare_revenue", "ledger_balanced"),
    cli={"pay": cli_app},
    openapi=_openapi,
    tasks=(run_publisher,),
    health=health,
    settings=PaymentsSettings,
    diagnostics=diagnostics,
    pages=pages,
)

__all__ = ["SERVICE", "PaymentsSettings", "publish_once"]

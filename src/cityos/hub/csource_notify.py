"""Subscriptions to context source registrations (clause 5.11) and their notifications.

A csource subscription is checked as an entity subscription is (the same members, by
:func:`cityos.hub.subscriptions.parse_subscription`) plus ``csf`` and ``temporalQ``, and kept
in the store's generic documents under :data:`KIND` — apart from entity subscriptions, so
the entity outbox never matches it. When a registration is created, changed or deleted,
every active subscription of that tenant that matched it before or matches it now is sent a
``ContextSourceNotification`` whose ``triggerReason`` is ``newlyMatching``, ``updated`` or
``noLongerMatching`` (clause 5.11.7); on creation a subscription is sent the registrations
that match it already. Registrations change seldom, so notifications are sent at once, each
in a task of its own, through the same SSRF guard and timeout as entity notifications
(:mod:`cityos.hub.netguard`), and the outcome is recorded in the subscription's
``notification`` member (timesSent, lastSuccess, lastFailure, status), kept apart from the
subscription itself.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import orjson

from cityos.hub import csources
from cityos.hub.core import Hub
from cityos.hub.errors import BadRequestData
from cityos.hub.implicit_contexts import IMPLICIT_KEY, restore_implicit
from cityos.hub.ldcontext import CORE_CONTEXT_URL, Context, link_header_for
from cityos.hub.model import now_iso, to_hub_time
from cityos.hub.netguard import AsyncGuardedTransport, DestinationError
from cityos.hub.query.geo import parse_geo_query
from cityos.hub.query.model import TypeName
from cityos.hub.query.q import expand_q, parse_q

log = logging.getLogger("cityos.hub.csources")

KIND = "csource-subscription"  # Store.put_doc kind
STATUS_KIND = "csource-subscription-status"  # its delivery status (timesSent, lastSuccess …)
DELIVERY = ("timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure")
_tasks: set[asyncio.Task[None]] = set()  # keeps running sends referenced
_periodic: dict[tuple[str, str], asyncio.Task[None]] = {}  # timeInterval schedules


def check_extras(body: dict[str, Any]) -> None:
    """What a csource subscription has beyond an entity subscription: csf and temporalQ."""
    if "csf" in body:
        parse_q(str(body["csf"]))
    tq = body.get("temporalQ")
    if tq is not None:
        if not isinstance(tq, dict) or tq.get("timerel") not in ("before", "after", "between"):
            raise BadRequestData("temporalQ needs timerel before, after or between")
        for key in ("timeAt", "endTimeAt"):
            if key in tq:
                try:
                    to_hub_time(str(tq[key]))
                except ValueError:
                    raise BadRequestData(f"temporalQ.{key} is not a date-time") from None
        if "timeAt" not in tq or (tq["timerel"] == "between" and "endTimeAt" not in tq):
            raise BadRequestData("temporalQ needs timeAt (and endTimeAt for between)")


def _filters(sub: dict[str, Any], ctx: Context) -> list[csources.RegistrationFilter]:
    """One discovery filter per entity selector of the subscription (any may match)."""
    common: dict[str, Any] = {}
    if sub.get("watchedAttributes"):
        common["attrs"] = [ctx.expand_term(a) for a in sub["watchedAttributes"]]
    if "q" in sub:
        common["q"] = expand_q(parse_q(str(sub["q"])), ctx.expand_term)
    if "csf" in sub:
        common["csf"] = expand_q(parse_q(str(sub["csf"])), ctx.expand_term)
    if geo := sub.get("geoQ"):
        coords = geo["coordinates"]
        common["geo"] = parse_geo_query(
            geo["georel"],
            geo["geometry"],
            coords if isinstance(coords, str) else orjson.dumps(coords).decode(),
            ctx.expand_term(geo.get("geoproperty", "location")),
        )
    if tq := sub.get("temporalQ"):
        common["temporal"] = csources.TemporalFilter(
            tq["timerel"],
            to_hub_time(tq["timeAt"]),
            to_hub_time(tq["endTimeAt"]) if "endTimeAt" in tq else None,
            tq.get("timeproperty", "observedAt"),
        )
    selectors = sub.get("entities") or [None]
    out = []
    for sel in selectors:
        f = csources.RegistrationFilter(**common)
        if sel is not None:
            f.types = TypeName(ctx.expand_term(sel["type"]))
            f.ids = [sel["id"]] if "id" in sel else None
            f.id_pattern = sel.get("idPattern")
        out.append(f)
    return out


def sub_matches(hub: Hub, sub: dict[str, Any], reg: dict[str, Any] | None) -> bool:
    if reg is None or csources.expired(reg):
        return False
    ctx = hub.contexts.resolve(sub.get("@context"))
    return any(csources.matches(reg, f) for f in _filters(sub, ctx))


def active(sub: dict[str, Any]) -> bool:
    if not sub.get("isActive", True):
        return False
    return "expiresAt" not in sub or to_hub_time(str(sub["expiresAt"])) > now_iso()


def registration_changed(
    hub: Hub, tenant: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Tell every subscription of the tenant that this change concerns (clause 5.11.7)."""
    for sub in hub.store.list_docs(KIND, tenant):
        if not active(sub):
            continue
        was, now = sub_matches(hub, sub, before), sub_matches(hub, sub, after)
        if now:
            notify(hub, tenant, sub, [after], "updated" if was else "newlyMatching")  # type: ignore[list-item]
        elif was:
            notify(hub, tenant, sub, [before], "noLongerMatching")  # type: ignore[list-item]


def notify_initial(hub: Hub, tenant: str, sub: dict[str, Any]) -> None:
    """On creation or update: the registrations that match the subscription now."""
    if not active(sub):
        return
    regs = [r for r in hub.store.list_docs(csources.KIND, tenant) if sub_matches(hub, sub, r)]
    if regs:
        regs.sort(key=lambda r: r["createdAt"])
        notify(hub, tenant, sub, regs, "newlyMatching")


def start_periodic(hub: Hub, tenant: str, sub: dict[str, Any]) -> None:
    """A ``timeInterval`` subscription: every interval, the registrations that match it,
    from this process while the subscription stays as it is (a change restarts it; the
    schedule is not kept across restarts)."""
    key = (tenant, sub["id"])
    if (old := _periodic.pop(key, None)) is not None:
        old.cancel()
    if not sub.get("timeInterval"):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _periodic[key] = loop.create_task(_every(hub, tenant, sub))


async def _every(hub: Hub, tenant: str, sub: dict[str, Any]) -> None:
    while True:
        await asyncio.sleep(float(sub["timeInterval"]))
        now = hub.store.get_doc(KIND, tenant, sub["id"])
        if now is None or now.get("modifiedAt") != sub.get("modifiedAt"):
            return  # deleted or changed: its own schedule, if any, has started
        if active(now):
            regs = [
                r for r in hub.store.list_docs(csources.KIND, tenant) if sub_matches(hub, now, r)
            ]
            if regs:
                notify(
                    hub, tenant, now, sorted(regs, key=lambda r: r["createdAt"]), "newlyMatching"
                )


def payload(
    hub: Hub, sub: dict[str, Any], regs: list[dict[str, Any]], reason: str
) -> dict[str, Any]:
    ctx = hub.contexts.resolve(sub.get("@context"))
    filters = _filters(sub, ctx)

    def relevant(reg: dict[str, Any]) -> dict[str, Any]:
        """Only the information items the subscription asks about (clause 5.11.7)."""
        infos = [i for i in reg["information"] if any(csources.info_matches(f, i) for f in filters)]
        return {**reg, "information": infos} if infos else reg

    return {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "ContextSourceNotification",
        "subscriptionId": sub["id"],
        "notifiedAt": now_iso(),
        "triggerReason": reason,
        "data": [csources.render_registration(relevant(r), ctx) for r in regs],
    }


def notify(
    hub: Hub, tenant: str, sub: dict[str, Any], regs: list[dict[str, Any]], reason: str
) -> None:
    """Send one notification in the background (nothing to send without a running loop)."""
    body = payload(hub, sub, regs, reason)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_send(hub, tenant, sub, body))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _send(hub: Hub, tenant: str, sub: dict[str, Any], body: dict[str, Any]) -> None:
    endpoint = sub["notification"]["endpoint"]
    media = endpoint.get("accept") or "application/json"
    headers = {"Content-Type": media}
    context = sub.get("@context") or CORE_CONTEXT_URL
    if media == "application/ld+json":
        body = {**body, "@context": context}
    else:
        target = context if isinstance(context, str) else CORE_CONTEXT_URL
        if isinstance(context, list) and len(context) == 1 and isinstance(context[0], str):
            target = context[0]
        if sub.get(IMPLICIT_KEY):  # a compound @context, named by its implicit one
            await asyncio.to_thread(restore_implicit, hub.store, sub)
            target = sub[IMPLICIT_KEY]
        headers["Link"] = link_header_for(target)
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    for info in endpoint.get("receiverInfo") or []:
        if isinstance(info, dict) and "key" in info and "value" in info:
            headers[str(info["key"])] = str(info["value"])
    settings = hub.settings
    error: str | None = None
    try:
        async with httpx.AsyncClient(
            timeout=settings.notify_timeout_s,
            transport=AsyncGuardedTransport(allow_private=settings.notify_private_allowed()),
        ) as client:
            r = await client.post(endpoint["uri"], content=orjson.dumps(body), headers=headers)
        if not 200 <= r.status_code < 300:
            error = f"HTTP {r.status_code}"
    except (DestinationError, httpx.HTTPError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    _record(hub, tenant, sub["id"], body["notifiedAt"], error)


def _record(hub: Hub, tenant: str, sub_id: str, at: str, error: str | None) -> None:
    """Count a sent notification in the subscription's delivery status, a document of its
    own (:data:`STATUS_KIND`) so that a send never rewrites what the subscriber wrote."""
    if hub.store.get_doc(KIND, tenant, sub_id) is None:
        return
    note = hub.store.get_doc(STATUS_KIND, tenant, sub_id) or {}
    note["lastNotification"] = at
    note["timesSent"] = note.get("timesSent", 0) + 1
    if error is None:
        note["lastSuccess"] = at
        note["status"] = "ok"
    else:
        note["timesFailed"] = note.get("timesFailed", 0) + 1
        note["lastFailure"] = at
        note["status"] = "failed"
        log.warning("csource subscription %s: notification failed: %s", sub_id, error)
    hub.store.put_doc(STATUS_KIND, tenant, sub_id, note)


def delivery_status(hub: Hub, tenant: str, sub_id: str) -> dict[str, Any]:
    """What :func:`_record` counted: members of the subscription's ``notification``."""
    return hub.store.get_doc(STATUS_KIND, tenant, sub_id) or {}


def forget(hub: Hub, tenant: str, sub_id: str) -> None:
    hub.store.delete_doc(KIND, tenant, sub_id)
    hub.store.delete_doc(STATUS_KIND, tenant, sub_id)

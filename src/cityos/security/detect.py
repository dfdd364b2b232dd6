"""Attack detection: the hub watches its own event stream and raises FIWARE ``Alert`` entities.

Two feeds: the door (:mod:`cityos.security.guard`) reports every request's outcome and, for a
refusal, its cause; the IoT agent (:mod:`cityos.devices.agent`) reports every measure it
applied, one call per batch. Feeding appends to a queue and returns (well under a
microsecond; a full queue drops and counts). A background task (:meth:`Detector.run`) drains
the queue off the request path, applies the rules and the online models, and writes alerts
through the hub — Smart Data Models ``Alert`` entities (``category: security``) in the tenant
concerned, so operators query them and subscriptions route them like any other entity.

Rules, for what is clear-cut (docs/security.md, "Attack detection", says why each is one):

* ``bruteForce`` — ``detect_bruteforce_failures`` failed authentications (a bad, expired or
  revoked credential; a refused password at ``/auth/token``) from one client address within
  ``detect_window_s``;
* ``idScan`` — 404s on ``detect_idscan_ids`` distinct entity (or subscription, …) ids asked
  for by one principal or client within ``detect_window_s``;
* ``crossTenantToken`` — a valid credential presented for a tenant it is not bound to (the
  door answers 403 and says so: the cause ``tenant``);
* ``deniedRequests`` — ``detect_denied_requests`` refusals by the roles' rules (403) or for
  want of credentials (401) to one principal or client within ``detect_window_s``;
* ``spoofedSensor`` / ``implausibleValue`` — a reading outside what is physically possible
  for its attribute (:data:`PLAUSIBLE`, extended by ``detect_ranges``).

Online models (river's streaming statistics), for what has no fixed threshold:

* ``spoofedSensor`` / ``abnormalJump`` — per sensor attribute, the change between
  consecutive readings (per √minute, so a gap is not a jump) against that sensor's own
  running mean and variance (``river.stats.Var``): after ``detect_warmup`` changes, a change
  ``detect_jump_z`` standard deviations out (the deviation floored at 1 % of the attribute's
  plausible span, or of its level) is abnormal and not learnt;
* ``abnormalRequestRate`` — per principal or client, ``log(1 + requests)`` per
  ``detect_rate_window_s`` against its own history: after ``detect_rate_warmup`` active
  windows, a window ``detect_rate_z`` deviations above it (and at least
  ``detect_rate_min_requests`` requests) is abnormal.

Alerts are de-duplicated: one open alert per (tenant, kind, rule, source); more events
within ``detect_alert_window_s`` of its last one update it (``data.occurrences``,
``validTo``) — at most once per processing round — instead of raising another.
State is per process (with several workers each counts what it serves).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cityos.hub.core import Hub
from cityos.hub.registry import device_entity_id

log = logging.getLogger("cityos.security.detect")

INF = math.inf
# What is physically possible for common Smart Data Models attributes, in their SDM units
# (a value outside is not a reading of the world). Deliberately wide: a rule must not fire
# on a heat wave, a dust storm or a jam, only on what no sensor can measure.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    # weather (°C, 0..1 or %, hPa, m/s, degrees, mm, W/m², lux)
    "temperature": (-90.0, 70.0),
    "dewPoint": (-90.0, 70.0),
    "feelsLikeTemperature": (-100.0, 80.0),
    "relativeHumidity": (0.0, 100.0),  # SDM: 0..1; percentages are common, so tolerated
    "humidity": (0.0, 100.0),
    "atmosphericPressure": (300.0, 1100.0),
    "windSpeed": (0.0, 120.0),
    "windDirection": (-180.0, 360.0),
    "precipitation": (0.0, 2000.0),
    "solarRadiation": (0.0, 2000.0),
    "illuminance": (0.0, 200_000.0),
    "uVIndexMax": (0.0, 25.0),
    # air quality (µg/m³; CO₂ in ppm)
    "pm1": (0.0, 2000.0),
    "pm25": (0.0, 2000.0),
    "pm10": (0.0, 5000.0),
    "no": (0.0, 5000.0),
    "no2": (0.0, 5000.0),
    "nox": (0.0, 10_000.0),
    "o3": (0.0, 2000.0),
    "so2": (0.0, 10_000.0),
    "co": (0.0, 100_000.0),
    "co2": (0.0, 100_000.0),
    "airQualityIndex": (0.0, 1000.0),
    # noise (dB(A); 194 dB is the loudest sound air carries)
    "LAeq": (0.0, 194.0),
    "LAmax": (0.0, 194.0),
    "LAS": (0.0, 194.0),
    # traffic (vehicles per period, 0..1, km/h, m, s)
    "intensity": (0.0, INF),
    "occupancy": (0.0, 1.0),
    "averageVehicleSpeed": (0.0, 300.0),
    "speed": (0.0, 400.0),
    "averageVehicleLength": (0.0, 50.0),
    "averageGapDistance": (0.0, INF),
    "averageHeadwayTime": (0.0, INF),
    # parking, people, waste, devices, energy
    "availableSpotNumber": (0.0, INF),
    "occupiedSpotNumber": (0.0, INF),
    "peopleCount": (0.0, INF),
    "fillingLevel": (0.0, 1.0),
    "batteryLevel": (0.0, 100.0),  # SDM: 0..1; percentages tolerated
    "totalActiveEnergyImport": (0.0, INF),
    "totalActiveEnergyExport": (0.0, INF),
}

SEVERITY = {
    "bruteForce": "high",
    "idScan": "medium",
    "crossTenantToken": "high",
    "deniedRequests": "medium",
    "implausibleValue": "high",
    "abnormalJump": "medium",
    "abnormalRequestRate": "medium",
}
# A resource asked for by id: the id is the path segment after one of these.
_BY_ID = re.compile(
    r"/(?:entities|subscriptions|csourceRegistrations|jsonldContexts|devices|entityOperations)/([^/]+)"
)
_LOCATION = "https://uri.etsi.org/ngsi-ld/location"
_REQUEST, _MEASURES, _APPLIED = 0, 1, 2
_RATE_STD_FLOOR = 0.35  # log units: a client's rate must rise ~e^(z·0.35)-fold to count


def cause_of(err: Exception) -> str | None:
    """Why the door refused a request, for :meth:`Detector.observe_request`: ``credential``
    (a credential that does not authenticate), ``anonymous`` (none sent), ``tenant`` (a
    valid credential for another tenant), ``policy`` (no rule grants the action)."""
    status = getattr(err, "status", None)
    if status == 401:
        return "credential" if getattr(err, "error", None) else "anonymous"
    if status == 403:
        return getattr(err, "cause", None) or "policy"
    return getattr(err, "cause", None)  # a 400 naming another tenant too: ``tenant``


def refused(err: Exception, principal: Any, cause: str) -> Exception:
    """Mark the door's refusal with who was refused (a Principal) and why (``tenant`` or
    ``policy``), for :func:`cause_of` and :meth:`Detector.observe_request`."""
    err.principal = principal  # type: ignore[attr-defined]
    err.cause = cause  # type: ignore[attr-defined]
    return err


def parse_ranges(items: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``["temperature=-40..60", "level=0..inf"]`` → {name: (low, high)}; ValueError saying
    which item is wrong."""
    out: dict[str, tuple[float, float]] = {}
    for item in items:
        name, sep, span = item.partition("=")
        low, dots, high = span.partition("..")
        try:
            if not (sep and dots and name.strip()):
                raise ValueError(item)
            lo, hi = float(low), float(high)
            if not lo <= hi:
                raise ValueError(item)
        except ValueError:
            raise ValueError(
                f"setting detect_ranges: {item!r} is not name=low..high (e.g. temperature=-40..60)"
            ) from None
        out[name.strip()] = (lo, hi)
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return None


_SHORT: dict[str, str] = {}


def short_name(iri: str) -> str:
    """An expanded attribute IRI's last segment: ``…/dataModel.Environment/pm25`` → ``pm25``."""
    name = _SHORT.get(iri)
    if name is None:
        name = iri[max(iri.rfind("/"), iri.rfind("#")) + 1 :]
        if len(_SHORT) < 10_000:
            _SHORT[iri] = name
    return name


@dataclass
class _Series:
    """One sensor attribute: its last reading and the running statistics of its changes."""

    t: float
    value: float
    changes: Any  # river.stats.Var (and its .mean) of the changes learnt
    n: int = 0  # how many


@dataclass
class _Alert:
    """An open alert: updated by further events until ``alert_window_s`` after its last."""

    id: str
    tenant: str
    kind: str  # subCategory
    rule: str
    source: str
    description: str
    first: float  # when the first event happened (validFrom)
    last: float  # when the latest did
    touched: float  # when the detector last saw one (now, not the event's own time)
    issued: str
    data: dict[str, Any]
    occurrences: int = 1
    location: Any = None

    def entity(self, window_s: float) -> dict[str, Any]:
        def prop(value: Any) -> dict[str, Any]:
            return {"type": "Property", "value": value}

        out: dict[str, Any] = {
            "id": self.id,
            "type": "Alert",
            "category": prop("security"),
            "subCategory": prop(self.kind),
            "severity": prop(SEVERITY.get(self.rule, "medium")),
            "description": prop(self.description),
            "alertSource": prop(self.source),
            "dateIssued": prop(self.issued),
            "validFrom": prop(_iso(self.first)),
            "validTo": prop(_iso(self.touched + window_s)),
            "data": prop(
                {**self.data, "rule": self.rule, "occurrences": self.occurrences}
                | {"lastSeen": _iso(self.last)}
            ),
        }
        if self.location is not None:
            out["location"] = {"type": "GeoProperty", "value": self.location}
        return out


@dataclass
class _Source:
    """What the rules keep per client or principal (pruned once quiet for a window)."""

    failures: deque[float] = field(default_factory=deque)
    denied: deque[float] = field(default_factory=deque)
    missing: dict[str, float] = field(default_factory=dict)  # id → when last asked
    window: list[float] | None = None  # [start, requests] of the current rate window
    last: float = 0.0


class Detector:
    """Attack detection for one process. Feed it from any thread (``observe_*``); call
    :meth:`process` (or run :meth:`run`) to apply the rules and models and write alerts."""

    def __init__(self, hub: Hub, *, clock: Any = time.time) -> None:
        from river import stats  # streaming statistics (imported here: only where detecting)

        self._Var = stats.Var
        self.hub = hub
        self.clock = clock
        s = hub.settings
        self.window_s = s.detect_window_s
        self.bruteforce_failures = s.detect_bruteforce_failures
        self.idscan_ids = s.detect_idscan_ids
        self.denied_requests = s.detect_denied_requests
        self.alert_window_s = s.detect_alert_window_s
        self.jump_z = s.detect_jump_z
        self.warmup = s.detect_warmup
        self.rate_window_s = s.detect_rate_window_s
        self.rate_warmup = s.detect_rate_warmup
        self.rate_z = s.detect_rate_z
        self.rate_min_requests = s.detect_rate_min_requests
        self.interval_s = s.detect_interval_s
        self.ranges = {**PLAUSIBLE, **parse_ranges(s.detect_ranges)}  # bad ranges stop here
        self.max_pending = 100_000  # queued events (an agent batch is one)
        self.max_tracked = 100_000  # sensor series, and clients, kept in memory
        self.dropped = 0  # events not queued: the queue was full
        self.raised = 0  # alerts raised by this process (not counting updates)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()  # one processing round at a time
        self._sources: dict[str, _Source] = {}
        self._rates: dict[str, Any] = {}  # source → river.stats.Var of log(1 + requests)
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._open: dict[tuple[str, str, str, str], _Alert] = {}
        self._dirty: dict[tuple[str, str, str, str], _Alert] = {}
        self._clients: dict[str, Any] = {}
        self._pruned_at = 0.0

    # -- feeding: any thread, never blocks ---------------------------------------------------
    def _put(self, event: tuple[Any, ...]) -> None:
        if len(self._queue) >= self.max_pending:
            self.dropped += 1
            return
        self._queue.append(event)

    def observe_request(
        self,
        client: str,
        subject: str | None,
        tenant: str,
        method: str,
        path: str,
        status: int,
        *,
        cause: str | None = None,
        home_tenants: Iterable[str] = (),
    ) -> None:
        """One request's outcome. ``client`` is its address (``ip:…``), ``subject`` the
        authenticated principal's, ``cause`` why the door refused it (:func:`cause_of`),
        ``home_tenants`` the principal's tenants."""
        self._put(
            (_REQUEST, self.clock(), client, subject, tenant, method, path, status, cause,
             home_tenants)
        )  # fmt: skip

    def observe_measures(
        self,
        tenant: str,
        device_id: str | None,
        entity_id: str,
        attrs: dict[str, Any],
        observed_at: str | float | None = None,
    ) -> None:
        """One device's readings: ``{attribute name: value}`` observed at ``observed_at``
        (ISO 8601 or epoch seconds; now if None)."""
        self._put((_MEASURES, self.clock(), tenant, device_id, entity_id, attrs, observed_at))

    def observe_applied(self, batch: list[tuple[str, str, str, dict[str, list[Any]]]]) -> None:
        """What the IoT agent applied: ``(tenant, device_id, entity_id, attrs)`` with the
        attributes in the hub's stored (expanded) form. One queue entry for the batch."""
        self._put((_APPLIED, self.clock(), batch))

    # -- processing: the background task ---------------------------------------------------
    async def run(self) -> None:
        """Process the queue every ``detect_interval_s`` until cancelled (off the loop)."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.process)
            except Exception:
                log.exception("attack detection failed; continuing")

    def process(self) -> int:
        """Drain the queue, apply the rules and models, write new and updated alerts; how
        many alert entities were written."""
        with self._lock:
            queue = self._queue
            for _ in range(len(queue)):
                event = queue.popleft()
                try:
                    if event[0] == _REQUEST:
                        self._request(*event[1:])
                    elif event[0] == _MEASURES:
                        self._measures(*event[1:])
                    else:
                        self._applied(*event[1:])
                except Exception:
                    log.exception("attack detection: an event could not be processed")
            now = self.clock()
            self._close_rate_windows(now)
            if now - self._pruned_at >= min(self.window_s, 60.0):
                self._prune(now)
            return self._write()

    # -- requests --------------------------------------------------------------------------
    def _source(self, key: str, t: float) -> _Source:
        src = self._sources.get(key)
        if src is None:
            if len(self._sources) >= self.max_tracked:
                self._prune(t)
            src = self._sources[key] = _Source()
        src.last = t
        return src

    def _request(
        self,
        t: float,
        client: str,
        subject: str | None,
        tenant: str,
        method: str,
        path: str,
        status: int,
        cause: str | None,
        home_tenants: Iterable[str],
    ) -> None:
        who = subject or client
        src = self._source(who, t)
        self._count_rate(who, src, t)
        if path == "/auth/token" and method == "POST" and status in (400, 401):
            cause = "login"
        if cause in ("credential", "login"):
            self._failure(client, t, tenant, cause)
        elif cause == "tenant":
            self._cross_tenant(t, client, subject or client, tenant, home_tenants)
        elif cause in ("policy", "anonymous"):
            self._denied(who, src, t, "" if subject is None else tenant, cause)
        if status == 404:
            found = _BY_ID.search(path)
            if found is not None:
                self._missing(who, src, t, tenant, found.group(1))

    def _failure(self, client: str, t: float, tenant: str, cause: str) -> None:
        src = self._source(client, t)
        failures = src.failures
        failures.append(t)
        while failures and failures[0] < t - self.window_s:
            failures.popleft()
        while len(failures) > self.bruteforce_failures:  # the count is all the rule needs
            failures.popleft()
        if len(failures) >= self.bruteforce_failures:
            what = "refused logins" if cause == "login" else "failed authentications"
            self._raise(
                "",  # the attacker is not in any tenant: the platform's operators
                "bruteForce",
                "bruteForce",
                client,
                t,
                f"{len(failures)} {what} or more from {client} within {self.window_s:g} s",
                {"client": client, "failures": len(failures), "windowSeconds": self.window_s,
                 "tenant": tenant, "kind": cause},
            )  # fmt: skip

    def _cross_tenant(
        self, t: float, client: str, subject: str, tenant: str, home: Iterable[str]
    ) -> None:
        tenants = sorted(x for x in home if x != "*")[:8] or [""]
        for home_tenant in tenants:  # the operators of the tenant whose credential it is
            self._raise(
                home_tenant,
                "crossTenantToken",
                "crossTenantToken",
                subject,
                t,
                f"the credential of {subject} (tenants {', '.join(repr(x) for x in tenants)})"
                f" was presented for tenant {tenant or '(default)'!r} from {client}",
                {"principal": subject, "client": client, "attemptedTenant": tenant},
            )

    def _denied(self, who: str, src: _Source, t: float, tenant: str, cause: str) -> None:
        denied = src.denied
        denied.append(t)
        while denied and denied[0] < t - self.window_s:
            denied.popleft()
        while len(denied) > self.denied_requests:
            denied.popleft()
        if len(denied) >= self.denied_requests:
            self._raise(
                tenant,
                "deniedRequests",
                "deniedRequests",
                who,
                t,
                f"{len(denied)} requests or more of {who} refused within {self.window_s:g} s",
                {"denied": len(denied), "windowSeconds": self.window_s, "cause": cause},
            )

    def _missing(self, who: str, src: _Source, t: float, tenant: str, item: str) -> None:
        missing = src.missing
        missing.pop(item, None)
        missing[item] = t  # insertion order: oldest first
        horizon = t - self.window_s
        while missing:
            oldest = next(iter(missing))
            if missing[oldest] >= horizon and len(missing) <= 2 * self.idscan_ids:
                break
            del missing[oldest]
        if len(missing) >= self.idscan_ids:
            examples = list(missing)[-5:]
            self._raise(
                tenant,
                "idScan",
                "idScan",
                who,
                t,
                f"{who} asked for {len(missing)} ids that do not exist within "
                f"{self.window_s:g} s (e.g. {', '.join(examples[:3])})",
                {"distinctIds": len(missing), "windowSeconds": self.window_s,
                 "examples": examples},
            )  # fmt: skip

    # -- request rates: the per-client model -------------------------------------------------
    def _count_rate(self, who: str, src: _Source, t: float) -> None:
        window = src.window
        if window is not None and t >= window[0] + self.rate_window_s:
            self._close_rate(who, window)
            window = None
        if window is None:
            src.window = [t, 1]
        else:
            window[1] += 1

    def _close_rate_windows(self, now: float) -> None:
        for who, src in self._sources.items():
            if src.window is not None and now >= src.window[0] + self.rate_window_s:
                self._close_rate(who, src.window)
                src.window = None

    def _close_rate(self, who: str, window: list[float]) -> None:
        start, count = window
        y = math.log1p(count)
        var = self._rates.get(who)
        if var is None:
            if len(self._rates) >= self.max_tracked:
                del self._rates[next(iter(self._rates))]
            var = self._rates[who] = self._Var()
        if var.n >= self.rate_warmup and count >= self.rate_min_requests:
            mean = var.mean.get()
            z = (y - mean) / max(var.get() ** 0.5, _RATE_STD_FLOOR)
            if z >= self.rate_z:
                usual = math.expm1(mean)
                self._raise(
                    "",
                    "abnormalRequestRate",
                    "abnormalRequestRate",
                    who,
                    start,
                    f"{who} sent {int(count)} requests in {self.rate_window_s:g} s, "
                    f"{count / max(usual, 1.0):.0f} times its usual {usual:.0f}",
                    {"requests": int(count), "usual": round(usual, 1), "z": round(z, 1),
                     "windowSeconds": self.rate_window_s},
                )  # fmt: skip
        var.update(y)

    # -- device telemetry ------------------------------------------------------------------
    def _measures(
        self,
        t: float,
        tenant: str,
        device_id: str | None,
        entity_id: str,
        attrs: dict[str, Any],
        observed_at: Any,
    ) -> None:
        at = _seconds(observed_at) if observed_at is not None else None
        for name, value in attrs.items():
            self._reading(tenant, device_id, entity_id, name, value, t if at is None else at)

    def _applied(self, t: float, batch: list[tuple[str, str, str, dict[str, list[Any]]]]) -> None:
        seen, at = None, None  # a measure's attributes share their observedAt: parse it once
        for tenant, device_id, entity_id, attrs in batch:
            for iri, instances in attrs.items():
                for inst in instances:
                    value = inst.get("value")
                    if type(value) is not float and type(value) is not int:
                        continue
                    observed = inst.get("observedAt")
                    if observed != seen:
                        seen, at = observed, _seconds(observed)
                    name = short_name(iri)
                    ds = inst.get("datasetId")
                    self._reading(
                        tenant, device_id, entity_id, name, value, t if at is None else at, ds
                    )

    def _reading(
        self,
        tenant: str,
        device_id: str | None,
        entity_id: str,
        name: str,
        value: Any,
        at: float,
        dataset: str | None = None,
    ) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return
        bounds = self.ranges.get(name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            self._raise(
                tenant,
                "spoofedSensor",
                "implausibleValue",
                _device_source(device_id, entity_id),
                at,
                f"{entity_id}: {name} = {value:g} is physically impossible "
                f"(plausible {bounds[0]:g}..{bounds[1]:g})",
                {"entity": entity_id, "attribute": name, "value": value,
                 "plausible": [_json_number(bounds[0]), _json_number(bounds[1])]},
                entity_id=entity_id,
            )  # fmt: skip
            return  # not a reading of the world: not the series' last value either
        key = (tenant, entity_id, name if dataset is None else f"{name}#{dataset}")
        series = self._series.pop(key, None)
        if series is None:
            if len(self._series) >= self.max_tracked:
                del self._series[next(iter(self._series))]  # the least recently read
            self._series[key] = _Series(at, value, self._Var())
            return
        self._series[key] = series  # most recently read last
        dt = at - series.t
        if dt <= 0:  # a repeat or an older reading: says nothing about change
            return
        change = value - series.value
        step = change / math.sqrt(max(dt, 1.0) / 60.0)  # per √minute
        changes = series.changes
        if series.n >= self.warmup:
            floor = 0.01 * (
                bounds[1] - bounds[0]
                if bounds is not None and math.isfinite(bounds[1] - bounds[0])
                else max(abs(series.value), 1e-6)
            )
            deviation = max(changes.get() ** 0.5, floor)
            z = abs(step - changes.mean.get()) / deviation
            if z >= self.jump_z:
                self._raise(
                    tenant,
                    "spoofedSensor",
                    "abnormalJump",
                    _device_source(device_id, entity_id),
                    at,
                    f"{entity_id}: {name} jumped from {series.value:g} to {value:g} in "
                    f"{dt:g} s, {z:.0f} standard deviations beyond its usual change",
                    {"entity": entity_id, "attribute": name, "previous": series.value,
                     "value": value, "seconds": dt, "z": round(z, 1)},
                    entity_id=entity_id,
                )  # fmt: skip
                series.t, series.value = at, value  # followed, not learnt
                return
        changes.update(step)
        series.n += 1
        series.t, series.value = at, value

    # -- alerts ----------------------------------------------------------------------------
    def _raise(
        self,
        tenant: str,
        kind: str,
        rule: str,
        source: str,
        at: float,
        description: str,
        data: dict[str, Any],
        *,
        entity_id: str | None = None,
    ) -> None:
        key = (tenant, kind, rule, source)
        alert = self._open.get(key)
        now = self.clock()
        if alert is not None and now <= alert.touched + self.alert_window_s:
            alert.occurrences += 1
            alert.last = max(alert.last, at)
            alert.touched = now  # the first event's details stay: what opened it
            self._dirty[key] = alert
            return
        alert = _Alert(
            id=f"urn:ngsi-ld:Alert:cityos-{kind}-{uuid.uuid4().hex[:16]}",
            tenant=tenant,
            kind=kind,
            rule=rule,
            source=source,
            description=description,
            first=at,
            last=at,
            touched=now,
            issued=_iso(now),
            data=dict(data),
            location=self._location(tenant, entity_id) if entity_id else None,
        )
        self._open[key] = self._dirty[key] = alert
        self.raised += 1
        log.warning("security alert %s (%s) in tenant %r: %s", kind, rule, tenant, description)

    def _location(self, tenant: str, entity_id: str) -> Any:
        try:
            found = self.hub.store.get_entity(tenant, entity_id)
        except Exception:
            return None
        instances = (found or {}).get("attrs", {}).get(_LOCATION) or [{}]
        return instances[0].get("value")

    def _write(self) -> int:
        if not self._dirty:
            return 0
        from cityos.hub.client import HubClient

        by_tenant: dict[str, list[_Alert]] = {}
        for alert in self._dirty.values():
            by_tenant.setdefault(alert.tenant, []).append(alert)
        written = 0
        for tenant, alerts in by_tenant.items():
            client = self._clients.get(tenant)
            if client is None:
                client = self._clients[tenant] = HubClient(self.hub, tenant=tenant)
            try:
                client.upsert([a.entity(self.alert_window_s) for a in alerts])
            except Exception:
                log.exception(
                    "writing %d alert(s) in tenant %r failed; retrying", len(alerts), tenant
                )
                continue
            for alert in alerts:
                self._dirty.pop((alert.tenant, alert.kind, alert.rule, alert.source), None)
            written += len(alerts)
        return written

    def _prune(self, now: float) -> None:
        """Forget what no rule needs any more: quiet sources, closed alerts."""
        self._pruned_at = now
        horizon = now - max(self.window_s, self.rate_window_s)
        for key in [k for k, s in self._sources.items() if s.last < horizon]:
            src = self._sources.pop(key)
            if src.window is not None:
                self._close_rate(key, src.window)
        closed = now - self.alert_window_s
        for key in [
            k for k, a in self._open.items() if a.touched < closed and k not in self._dirty
        ]:
            del self._open[key]


def _device_source(device_id: str | None, entity_id: str) -> str:
    if not device_id:
        return entity_id
    return device_entity_id(device_id)


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None

"""Demand response over OpenADR 2.0b: CityOS runs the VTN, each building's VEN is a client.

The conversation (OpenADR 2.0b simpleHttp, pull model: the VEN always speaks first, the VTN
only answers, built on ``openleadr``):

1. Registration. The VEN sends ``oadrQueryRegistration`` then ``oadrCreatePartyRegistration``
   with its venName. Only VENs the city agreed with beforehand (a :class:`KnownVen`: venName ->
   Building entity id, and with TLS its certificate fingerprint) get a venID and a
   registrationID, with the poll interval to use. Anyone else gets no registrationID, and the
   VEN gives up. A message under a venID that is not registered is answered with
   ``oadrRequestReregistration``.
2. Reports. The VEN offers its reports (``oadrRegisterReport``); the VTN asks for the
   TELEMETRY_USAGE real-power ones at its report interval. Each value of an
   ``oadrUpdateReport`` is checked (a number, 0 to 10 MW for one building) and written to the
   building's meter entity (``ACMeasurement.totalActivePower`` in kW with ``observedAt``); a
   value that cannot be true is refused, counted and logged, and nothing is written for it.
3. Events. :meth:`DemandResponse.request_shed` records a ``DemandResponseEvent`` entity and
   queues one LOAD_DISPATCH event (signal type ``delta``, in kW, negative: consume less) per
   VEN. The VEN takes it on its next ``oadrPoll`` and answers ``oadrCreatedEvent`` with
   optIn or optOut, which lands in the entity's ``participation``.
4. Measurement. After the event, :meth:`DemandResponse.measure` compares each building's mean
   reported power in the hour before the event (or a baseline given with the request) with its
   mean power during the event, and writes the difference as ``measuredShedKw`` on the event
   entity and as ``demandResponseShed`` on the Building entity where the hub holds it.

All hub writes go through the HubClient passed in (NGSI-LD normalized form, times in UTC).
"""

from __future__ import annotations

import bisect
import logging
import math
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

from cityos.hub.errors import ResourceNotFound
from cityos.services.energy.errors import BadReadingError, EnergyError, ProtocolError

log = logging.getLogger(__name__)

EVENT_TYPE = "DemandResponseEvent"
METER_TYPE = "ACMeasurement"
DEFAULT_VTN_ID = "CityOS-VTN"  # openleadr's VEN flags an all-lowercase vtnID as invalid
MAX_BUILDING_KW = 10_000.0  # 10 MW: no single building draws more; above is a broken meter
BASELINE_WINDOW = timedelta(hours=1)
HISTORY = timedelta(hours=26)  # readings kept in memory: a day and the baseline hour
MARKET_CONTEXT = "oadr://cityos/demand-response"
GRID_HZ, GRID_V = 50, 230  # the city's low-voltage grid, as the event's power measurement says
POWER_MEASUREMENTS = frozenset({"RealPower", "powerReal"})
_UNITS_W = {"W": 1.0, "kW": 1e3, "MW": 1e6}
_SI_SCALE = {"none": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}


class HubLike(Protocol):
    """What this module needs of a hub client (:class:`cityos.hub.client.HubClient`)."""

    def upsert(self, entities: list[dict[str, Any]], *, replace: bool = ...) -> Any: ...

    def update_attrs(self, entity_id: str, attrs: dict[str, Any]) -> None: ...

    def get(self, entity_id: str) -> dict[str, Any]: ...


class UnknownTargetError(EnergyError):
    """A demand-response request named a building or VEN the VTN has no VEN for."""


# -- values --------------------------------------------------------------------------------


def iso(t: datetime) -> str:
    """UTC ISO 8601 with ``Z``, as NGSI-LD writes times (milliseconds only where there are)."""
    spec = "milliseconds" if t.microsecond else "seconds"
    return t.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _aware(t: datetime) -> datetime:
    """openleadr parses times as UTC; a naive one is taken as UTC too, never as local."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def watts_per_unit(unit: str | None, scale: str | None) -> float:
    """How many watts one reported unit is (``W`` with SI scale ``k`` is 1000); a
    ProtocolError for units that are no power, so the report is not requested at all."""
    if unit not in _UNITS_W or (scale or "none") not in _SI_SCALE:
        raise ProtocolError(
            f"power in {scale or 'none'}-scaled {unit!r} is not understood; "
            f"report real power in {sorted(_UNITS_W)} with an SI scale in {sorted(_SI_SCALE)}"
        )
    return _UNITS_W[unit] * _SI_SCALE[scale or "none"]


def power_kw(value: object, watts: float = 1e3, *, max_kw: float = MAX_BUILDING_KW) -> float:
    """The reading in kW, or BadReadingError for one that cannot be a building's draw."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadReadingError(f"power {value!r} is not a number; report real power as a number")
    kw = float(value) * watts / 1e3
    if not math.isfinite(kw):
        raise BadReadingError(f"power {value!r} is not finite; report a measured value")
    if kw < 0:
        raise BadReadingError(
            f"power {kw:g} kW is negative; report consumption (0 or more), export separately"
        )
    if kw > max_kw:
        raise BadReadingError(
            f"power {kw:g} kW is more than {max_kw:g} kW for one building; check the meter scale"
        )
    return kw


def _prop(value: Any, at: datetime | None = None, unit: str | None = None) -> dict[str, Any]:
    attr: dict[str, Any] = {"type": "Property", "value": value}
    if unit:
        attr["unitCode"] = unit
    if at is not None:
        attr["observedAt"] = iso(at)
    return attr


def _datetime_prop(t: datetime) -> dict[str, Any]:
    return {"type": "Property", "value": {"@type": "DateTime", "@value": iso(t)}}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _openleadr() -> Any:
    """openleadr, imported on first use so that the energy service loads without it."""
    try:
        with warnings.catch_warnings():  # signxml warns about DSA on import; we never use DSA
            warnings.filterwarnings("ignore", message="DSA is deprecated")
            import openleadr
            import openleadr.objects
    except ImportError as err:
        raise EnergyError("demand response needs openleadr: pip install openleadr") from err
    return openleadr


# -- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownVen:
    """A building's VEN the city agreed with out of band: its venName (also its venID), the
    Building entity it speaks for and, over TLS, its certificate fingerprint."""

    ven_name: str
    building_id: str
    fingerprint: str | None = None

    @property
    def ven_id(self) -> str:
        """Fixed per VEN, so events can wait for a VEN that has not registered yet."""
        return self.ven_name

    @property
    def meter_id(self) -> str:
        return f"urn:ngsi-ld:{METER_TYPE}:openadr-{self.ven_name}"


def _registry(vens: Iterable[KnownVen] | Mapping[str, str]) -> dict[str, KnownVen]:
    """By venName; a mapping is venName -> Building entity id."""
    items = (
        [KnownVen(name, building) for name, building in vens.items()]
        if isinstance(vens, Mapping)
        else list(vens)
    )
    registry = {v.ven_name: v for v in items}
    buildings = [v.building_id for v in items]
    if len(registry) != len(items) or len(set(buildings)) != len(buildings):
        raise EnergyError("each VEN name and each building may appear once in the VEN registry")
    return registry


# -- the VTN --------------------------------------------------------------------------------


class Vtn:
    """The city's OpenADR 2.0b VTN: registers known VENs, takes their power reports into the
    hub and keeps recent readings for measuring demand response."""

    def __init__(
        self,
        hub: HubLike,
        vens: Iterable[KnownVen] | Mapping[str, str],
        *,
        vtn_id: str = DEFAULT_VTN_ID,
        host: str = "127.0.0.1",
        port: int = 8080,
        poll_interval: timedelta = timedelta(seconds=10),
        report_interval: timedelta = timedelta(minutes=1),
        max_building_kw: float = MAX_BUILDING_KW,
        http_cert: str | None = None,
        http_key: str | None = None,
        http_ca_file: str | None = None,
    ) -> None:
        self.hub = hub
        self.vens = _registry(vens)
        self.host, self.port = host, port
        self.report_interval = report_interval
        self.max_building_kw = max_building_kw
        self.registrations: dict[str, str] = {}  # venID -> registrationID
        self.refused_registrations: list[str] = []
        self.refused_by_ven: Counter[str] = Counter()
        self._readings: dict[str, list[tuple[datetime, float]]] = {}
        self._runner: Any = None
        self.oadr = _openleadr()
        with warnings.catch_warnings():  # aiohttp's advice on app keys, about openleadr's code
            warnings.filterwarnings("ignore", message="It is recommended to use web.AppKey")
            self.server = self.oadr.OpenADRServer(
                vtn_id=vtn_id,
                http_host=host,
                http_port=port,
                requested_poll_freq=poll_interval,
                ven_lookup=self.ven_lookup,
                http_cert=http_cert,
                http_key=http_key,
                http_ca_file=http_ca_file,
                show_fingerprint=False,
            )
        # openleadr keeps ven_lookup on its service *class*; set it on our instances as well
        # so that a second VTN in the process never answers from this one's registry.
        for service in self.server.services.values():
            service.ven_lookup = self.ven_lookup
        self.server.add_handler("on_create_party_registration", self.on_create_party_registration)
        self.server.add_handler("on_cancel_party_registration", self.on_cancel_party_registration)
        self.server.add_handler("on_register_report", self.on_register_report)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for VENs (port 0: any free port, then :attr:`port` is the one taken)."""
        from aiohttp import web

        self._runner = web.AppRunner(self.server.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.server.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("OpenADR VTN listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Vtn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """What a VEN is given as its vtn_url."""
        scheme = "https" if self.server.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}{self.server.http_path_prefix}"

    # -- registration ---------------------------------------------------------------------
    def on_create_party_registration(self, payload: dict[str, Any]) -> tuple[str, str] | bool:
        """Register only VENs in the registry (and over TLS only with the agreed certificate):
        an unknown VEN must never feed readings into the hub or receive events."""
        name = payload.get("ven_name")
        known = self.vens.get(name) if isinstance(name, str) else None
        if known is None or (known.fingerprint and payload.get("fingerprint") != known.fingerprint):
            self.refused_registrations.append(str(name))
            why = "unknown VEN" if known is None else "certificate fingerprint does not match"
            log.warning("refused OpenADR registration of %r: %s", name, why)
            return False
        registration_id = uuid.uuid4().hex
        self.registrations[known.ven_id] = registration_id
        log.info("VEN %s registered for %s", known.ven_name, known.building_id)
        return known.ven_id, registration_id

    def on_cancel_party_registration(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The VEN leaves: it is asked to register again before its next message counts."""
        self.registrations.pop(payload.get("ven_id", ""), None)
        return "oadrCanceledPartyRegistration", {
            "registration_id": payload.get("registration_id"),
            "ven_id": payload.get("ven_id"),
        }

    def ven_lookup(self, ven_id: str) -> dict[str, Any] | None:
        """openleadr's check on every message: None makes it ask the VEN to re-register."""
        known = self.vens.get(ven_id)
        registration_id = self.registrations.get(ven_id)
        if known is None or registration_id is None:
            return None
        return {
            "ven_id": ven_id,
            "ven_name": known.ven_name,
            "fingerprint": known.fingerprint,
            "registration_id": registration_id,
        }

    def resolve(self, targets: str | Iterable[str]) -> dict[str, KnownVen]:
        """Building id -> VEN for building ids or venNames; UnknownTargetError names any the
        registry lacks, so a request for a building without a VEN changes nothing."""
        names = [targets] if isinstance(targets, str) else list(targets)
        by_building = {v.building_id: v for v in self.vens.values()}
        found = {t: by_building.get(t) or self.vens.get(t) for t in names}
        unknown = [t for t, v in found.items() if v is None]
        if unknown or not names:
            raise UnknownTargetError(
                f"no VEN in the registry for {unknown or 'an empty target list'}; name "
                f"buildings or VENs from it: {sorted(by_building)[:10]}"
            )
        return {v.building_id: v for v in found.values() if v is not None}

    # -- reports ----------------------------------------------------------------------------
    def on_register_report(
        self,
        ven_id: str,
        resource_id: str,
        measurement: str,
        unit: str | None,
        scale: str | None,
        min_sampling_interval: timedelta | None,
        max_sampling_interval: timedelta | None,
    ) -> tuple[Any, timedelta] | None:
        """Ask for real-power telemetry only, at our interval within what the VEN offers."""
        known = self.vens.get(ven_id)
        if known is None or measurement not in POWER_MEASUREMENTS:
            return None
        try:
            watts = watts_per_unit(unit, scale)
        except ProtocolError as err:
            log.warning("not requesting report %s of VEN %s: %s", resource_id, ven_id, err)
            return None
        interval = self.report_interval
        if min_sampling_interval is not None:
            interval = max(interval, min_sampling_interval)
        if max_sampling_interval is not None:
            interval = min(interval, max_sampling_interval)
        return partial(self._on_report, known, watts), interval

    def _on_report(
        self, known: KnownVen, watts: float, values: list[tuple[datetime, object]]
    ) -> None:
        """openleadr's callback for one report: each (dtstart, value) on its own."""
        for at, value in values:
            self.ingest(known.ven_name, at, value, watts=watts)

    def ingest(
        self, ven_name: str, at: datetime, value: object, *, watts: float = 1e3
    ) -> float | None:
        """Check one reading (``value`` × ``watts`` W), keep it and write it to the hub; the
        kW kept, or None when refused (counted per VEN; a broken meter is logged once as a
        warning, then at debug level, so it cannot flood the log)."""
        known = self.vens.get(ven_name)
        if known is None:
            raise UnknownTargetError(f"no VEN {ven_name!r} in the registry; register it first")
        try:
            kw = power_kw(value, watts, max_kw=self.max_building_kw)
        except BadReadingError as err:
            self.refused_by_ven[ven_name] += 1
            level = logging.WARNING if self.refused_by_ven[ven_name] == 1 else logging.DEBUG
            log.log(level, "refused reading of VEN %s at %s: %s", ven_name, at, err)
            return None
        at = _aware(at)
        self._keep(known.building_id, at, kw)
        self.hub.upsert([self._meter_entity(known, at, kw)], replace=False)
        return kw

    @property
    def refused_readings(self) -> int:
        """Readings refused since start, all VENs together."""
        return self.refused_by_ven.total()

    def _keep(self, building_id: str, at: datetime, kw: float) -> None:
        series = self._readings.setdefault(building_id, [])
        bisect.insort(series, (at, kw))
        cut = bisect.bisect_left(series, (series[-1][0] - HISTORY, -math.inf))
        del series[:cut]

    @staticmethod
    def _meter_entity(known: KnownVen, at: datetime, kw: float) -> dict[str, Any]:
        return {
            "id": known.meter_id,
            "type": METER_TYPE,
            "totalActivePower": _prop(round(kw, 3), at, "KWT"),
            "refBuilding": {"type": "Relationship", "object": known.building_id},
        }

    def readings(self, building_id: str, since: datetime, until: datetime) -> list[float]:
        """kW readings with ``since <= observed < until``, oldest first."""
        series = self._readings.get(building_id, [])
        lo = bisect.bisect_left(series, (since, -math.inf))
        hi = bisect.bisect_left(series, (until, -math.inf))
        return [kw for _, kw in series[lo:hi]]


# -- demand response ------------------------------------------------------------------------


@dataclass
class ShedEvent:
    """One demand-response request as the VTN tracks it (the hub entity mirrors it)."""

    entity_id: str
    start: datetime
    duration: timedelta
    vens: dict[str, KnownVen]  # building id -> VEN
    shed_kw: dict[str, float]
    baseline_kw: dict[str, float] = field(default_factory=dict)
    opts: dict[str, str] = field(default_factory=dict)  # building -> pending/optIn/optOut
    oadr_ids: dict[str, str] = field(default_factory=dict)  # OpenADR eventID -> building
    status: str = "requested"
    measured_kw: dict[str, float | None] = field(default_factory=dict)

    @property
    def end(self) -> datetime:
        return self.start + self.duration


class DemandResponse:
    """Asks buildings to shed load through their VENs and measures what they shed."""

    def __init__(self, vtn: Vtn) -> None:
        self.vtn = vtn
        self.hub = vtn.hub
        self.events: dict[str, ShedEvent] = {}
        self._by_oadr_id: dict[str, ShedEvent] = {}

    def request_shed(
        self,
        targets: str | Iterable[str],
        start: datetime,
        duration: timedelta,
        shed_kw: float | Mapping[str, float],
        *,
        baseline_kw: float | Mapping[str, float] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue a LOAD_DISPATCH event for each target's VEN (building ids or venNames) and
        record it in the hub; the DemandResponseEvent entity id. ``shed_kw`` and
        ``baseline_kw`` are per building (one number for all, or by building id). Nothing
        is queued or written when a target is unknown or a value is out of range."""
        vens = self.vtn.resolve(targets)
        event = ShedEvent(
            entity_id=f"urn:ngsi-ld:{EVENT_TYPE}:{event_id or uuid.uuid4().hex}",
            start=self._check_start(start),
            duration=self._check_duration(duration),
            vens=vens,
            shed_kw=self._per_building(shed_kw, vens, "shed_kw"),
            baseline_kw={}
            if baseline_kw is None
            else self._per_building(baseline_kw, vens, "baseline_kw"),
            opts=dict.fromkeys(vens, "pending"),
        )
        if event.entity_id in self.events:
            raise EnergyError(f"{event.entity_id} was requested already; use another event_id")
        self.hub.upsert([self._event_entity(event)], replace=False)
        self.events[event.entity_id] = event
        for i, (building, ven) in enumerate(vens.items()):
            # One OpenADR event per VEN: openleadr keeps one opt callback per eventID and
            # drops it after the first answer, so a shared eventID would lose the others' opts.
            oadr_id = f"{event.entity_id.rsplit(':', 1)[1]}-{i}"
            event.oadr_ids[oadr_id] = building
            self._by_oadr_id[oadr_id] = event
            self.vtn.server.add_raw_event(
                ven.ven_id, self._oadr_event(event, oadr_id, ven), callback=self._on_opt
            )
        return event.entity_id

    def cancel(self, entity_id: str) -> None:
        """Withdraw the event from every VEN (they see it as cancelled on their next poll)."""
        event = self.event(entity_id)
        for oadr_id, building in event.oadr_ids.items():
            self.vtn.server.cancel_event(event.vens[building].ven_id, oadr_id)
        event.status = "cancelled"
        self.hub.update_attrs(entity_id, {"status": _prop("cancelled", datetime.now(UTC))})

    def measure(self, entity_id: str, *, now: datetime | None = None) -> dict[str, float | None]:
        """Measured shed per building in kW (baseline minus mean power during the event),
        written to the hub; None for a building whose reports do not cover the baseline
        hour and the event. Only after the event has ended."""
        event = self.event(entity_id)
        now = now or datetime.now(UTC)
        if now < event.end:
            raise EnergyError(f"{entity_id} ends at {iso(event.end)}; measure it after that")
        event.measured_kw = {b: self._shed(event, b) for b in event.vens}
        event.status = "measured"
        measured = {b: kw for b, kw in event.measured_kw.items() if kw is not None}
        self.hub.update_attrs(
            entity_id,
            {
                "measuredShedKw": _prop(measured, event.end, "KWT"),
                "baselineKw": _prop(self._baselines(event), event.end, "KWT"),
                "status": _prop(event.status, now),
            },
        )
        for building, kw in measured.items():
            self._write_building(building, kw, event)
        return dict(event.measured_kw)

    def event(self, entity_id: str) -> ShedEvent:
        try:
            return self.events[entity_id]
        except KeyError:
            raise EnergyError(f"no demand-response event {entity_id} was requested here") from None

    # -- OpenADR side ---------------------------------------------------------------------
    def _oadr_event(self, event: ShedEvent, oadr_id: str, ven: KnownVen) -> Any:
        objects = self.vtn.oadr.objects
        kw = event.shed_kw[ven.building_id]
        interval = objects.Interval(
            dtstart=event.start, duration=event.duration, signal_payload=-kw
        )
        signal = objects.EventSignal(
            intervals=[interval],
            signal_name="LOAD_DISPATCH",
            signal_type="delta",
            signal_id=f"{oadr_id}-power",
            measurement=objects.Measurement(  # the schema needs the power attributes
                name="powerReal",
                description="RealPower",
                unit="W",
                scale="k",
                power_attributes=objects.PowerAttributes(hertz=GRID_HZ, voltage=GRID_V, ac=True),
            ),
        )
        descriptor = objects.EventDescriptor(
            event_id=oadr_id,
            modification_number=0,
            market_context=MARKET_CONTEXT,
            event_status="far",
        )
        return objects.Event(
            event_descriptor=descriptor,
            event_signals=[signal],
            targets=[{"ven_id": ven.ven_id}],
            active_period=objects.ActivePeriod(dtstart=event.start, duration=event.duration),
            response_required="always",
        )

    def _on_opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        """openleadr's callback for the VEN's oadrCreatedEvent: its optIn or optOut."""
        event = self._by_oadr_id.get(event_id)
        building = event.oadr_ids.get(event_id) if event else None
        if event is None or building is None or event.vens[building].ven_id != ven_id:
            log.warning("ignored %s from VEN %s for unknown event %s", opt_type, ven_id, event_id)
            return
        if opt_type not in ("optIn", "optOut"):
            log.warning("ignored opt %r from VEN %s: not optIn or optOut", opt_type, ven_id)
            return
        event.opts[building] = opt_type
        at = datetime.now(UTC)
        self.hub.update_attrs(event.entity_id, {"participation": _prop(dict(event.opts), at)})

    # -- measurement ----------------------------------------------------------------------
    def _baselines(self, event: ShedEvent) -> dict[str, float]:
        found = {b: self._baseline(event, b) for b in event.vens}
        return {b: round(kw, 3) for b, kw in found.items() if kw is not None}

    def _baseline(self, event: ShedEvent, building: str) -> float | None:
        if building in event.baseline_kw:
            return event.baseline_kw[building]
        return _mean(self.vtn.readings(building, event.start - BASELINE_WINDOW, event.start))

    def _shed(self, event: ShedEvent, building: str) -> float | None:
        baseline = self._baseline(event, building)
        during = _mean(self.vtn.readings(building, event.start, event.end))
        if baseline is None or during is None:
            return None
        return round(baseline - during, 3)

    def _write_building(self, building: str, kw: float, event: ShedEvent) -> None:
        """The last measured shed on the Building itself, for dashboards that read buildings;
        a building the hub does not hold is left alone (the event entity has the figure)."""
        attr = _prop(kw, event.end, "KWT")
        attr["refDemandResponseEvent"] = {"type": "Relationship", "object": event.entity_id}
        try:
            self.hub.update_attrs(building, {"demandResponseShed": attr})
        except ResourceNotFound:
            log.info("building %s is not in the hub; its shed is on %s", building, event.entity_id)

    # -- the entity and checks ----------------------------------------------------------------
    @staticmethod
    def _event_entity(event: ShedEvent) -> dict[str, Any]:
        now = datetime.now(UTC)
        entity: dict[str, Any] = {
            "id": event.entity_id,
            "type": EVENT_TYPE,
            "status": _prop(event.status, now),
            "signalName": _prop("LOAD_DISPATCH"),
            "startTime": _datetime_prop(event.start),
            "endTime": _datetime_prop(event.end),
            "refBuilding": {"type": "Relationship", "object": list(event.vens)},
            "requestedShedKw": _prop(dict(event.shed_kw), now, "KWT"),
            "participation": _prop(dict(event.opts), now),
        }
        if event.baseline_kw:
            entity["baselineKw"] = _prop(dict(event.baseline_kw), now, "KWT")
        return entity

    @staticmethod
    def _check_start(start: datetime) -> datetime:
        if start.tzinfo is None:
            raise EnergyError("give the event start with a time zone (e.g. datetime.now(UTC))")
        return start.astimezone(UTC)

    @staticmethod
    def _check_duration(duration: timedelta) -> timedelta:
        """OpenADR writes durations in whole seconds; a fraction would silently vanish."""
        if duration < timedelta(seconds=1) or duration.microseconds:
            raise EnergyError(f"duration {duration} must be a whole number of seconds, at least 1")
        return duration

    def _per_building(
        self, value: float | Mapping[str, float], vens: dict[str, KnownVen], name: str
    ) -> dict[str, float]:
        """One kW figure per target building, each a number from 0 to the building limit."""
        given = value if isinstance(value, Mapping) else dict.fromkeys(vens, value)
        missing = set(vens) - set(given)
        if missing:
            raise EnergyError(f"{name} has no value for {sorted(missing)}; give one per building")
        out = {}
        for building in vens:
            try:
                out[building] = power_kw(given[building], max_kw=self.vtn.max_building_kw)
            except BadReadingError as err:
                raise EnergyError(f"{name} for {building}: {err}") from None
        return out

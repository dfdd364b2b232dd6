"""The city's OCPP 2.0.1 central system (CSMS): EV charging stations connect here, and what
they report reaches the hub as FIWARE ``EVChargingStation`` entities.

The conversation (OCPP-J over a websocket, subprotocol ``ocpp2.0.1``, one socket per
station at ``ws://host:port/ocpp/{station id}``; the station always dials in):

1. ``BootNotification`` (vendor, model, firmware) -> Accepted, with the heartbeat interval.
   A station that only lost its network reconnects without booting again, so nothing else
   waits for a boot and its transactions carry over.
2. ``Heartbeat`` -> the CSMS's time; ``StatusNotification`` -> the station's ``status``
   (OCPP's Available, Occupied, Reserved, Unavailable, Faulted).
3. ``Authorize`` -> Accepted for an idToken on the allow-list, Invalid otherwise. Tokens
   identify people: they are never written to the hub.
4. ``TransactionEvent`` Started / Updated / Ended, and ``MeterValues``, carry sampled values;
   ``Energy.Active.Import.Register`` and ``Power.Active.Import`` become ``energyImportedKwh``
   and ``powerKw``. A value that cannot be true is refused alone (logged, counted, not
   written); the rest of the message is still used, and the station still gets its answer.
5. The CSMS sends ``SetChargingProfile`` (a limit, or a schedule of per-period limits, in W)
   when the energy service wants to shift or cap load, and reports the station's answer.

If a station's socket closes while a transaction is active, the transaction is marked
``interrupted``, the station ``Unavailable``, and a FIWARE ``Alert`` (category ``energy``,
subCategory ``chargerDisconnected``) is written. A newer socket from the same station
replaces the old one quietly; the CSMS's own shutdown raises no alerts.

Every write goes through the ``client`` given (a :class:`~cityos.hub.client.HubClient`, or
anything with its ``upsert``): the hub is the only place the rest of the city reads from.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlsplit

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.datatypes import IdTokenInfoType
from ocpp.v201.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from .errors import EnergyError, ProtocolError
from .ocpp_model import (
    ENERGY,
    ChargingProfileError,
    OcppStats,
    Reading,
    StationState,
    Transaction,
    as_utc,
    charging_profile,
    check_energy_rate,
    disconnect_alert,
    iso_z,
    observed,
    prop,
    read_sample,
    reading_attrs,
    station_entity,
    utc_now,
)

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.0.1"
# OCPP 2.0.1 identities: up to 48 characters, and they become part of an entity id.
_PATH = re.compile(r"^/ocpp/(?P<cp_id>[A-Za-z0-9._~:-]{1,48})/?$")


class HubWriter(Protocol):
    """The part of :class:`~cityos.hub.client.HubClient` the CSMS needs."""

    def upsert(self, entities: list[dict[str, Any]], *, replace: bool = ...) -> Any: ...


class StationNotConnectedError(EnergyError):
    """A command for a station that has no open connection to this CSMS (never connected,
    or gone); it must dial in again before it can be sent anything."""


class CentralSystem:
    """The CSMS: a websocket server for charging stations that writes what they report to
    the hub and sends them charging limits.

    ``id_tokens``: the idTokens Authorize accepts. ``stations``: the station ids allowed to
    connect (None: any). ``port`` 0: any free port, reported by :meth:`start`."""

    def __init__(
        self,
        client: HubWriter,
        *,
        host: str = "127.0.0.1",
        port: int = 9000,
        id_tokens: Iterable[str] = (),
        stations: Iterable[str] | None = None,
        heartbeat_interval_s: int = 300,
        response_timeout_s: float = 10.0,
    ) -> None:
        self.client = client
        self.host = host
        self.port = port
        self.id_tokens = frozenset(id_tokens)
        self.stations = None if stations is None else frozenset(stations)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.response_timeout_s = response_timeout_s
        self.stats = OcppStats()
        self._states: dict[str, StationState] = {}
        self._sessions: dict[str, _Session] = {}
        self._server: Server | None = None
        self._closing = False
        self._profile_ids = 0

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> int:
        """Listen; the port bound (the one chosen by the system when ``port`` is 0)."""
        self._closing = False
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            process_request=self._check_request,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("OCPP 2.0.1 central system listening on %s", self.url("{station}"))
        return self.port

    async def stop(self) -> None:
        """Close every station's socket and stop listening (no disconnect alerts: it is us)."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def serve_forever(self) -> None:
        """Run until cancelled (a service task under ``cityos serve``)."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    async def __aenter__(self) -> CentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, cp_id: str) -> str:
        """Where station ``cp_id`` dials in."""
        return f"ws://{self.host}:{self.port}/ocpp/{cp_id}"

    def connected(self) -> list[str]:
        """The stations with an open socket now."""
        return sorted(self._sessions)

    def transactions(self, cp_id: str) -> list[Transaction]:
        """A station's transactions still open (active or interrupted)."""
        state = self._states.get(cp_id)
        return list(state.transactions.values()) if state else []

    # -- connections --------------------------------------------------------------------
    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse, before the handshake, a path that names no station or a station not
        allowed; websockets itself refuses a client without the ocpp2.0.1 subprotocol."""
        cp_id = station_from_path(request.path)
        if cp_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "connect to /ocpp/{station id}\n")
        if self.stations is not None and cp_id not in self.stations:
            log.warning("OCPP: refused unknown station %r", cp_id)
            return connection.respond(HTTPStatus.FORBIDDEN, f"station {cp_id} is not registered\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        """One station's socket, from handshake to close."""
        cp_id = station_from_path(connection.request.path if connection.request else "")
        if cp_id is None:  # process_request already refused it
            return
        session = _Session(cp_id, connection, self)
        previous = self._sessions.get(cp_id)
        self._sessions[cp_id] = session
        if previous is not None:
            log.info("OCPP: station %s reconnected; closing its older socket", cp_id)
            await previous.connection.close(1000, "replaced by a newer connection")
        self._write(cp_id, {"connected": prop(True, iso_z(utc_now()))})
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            self._disconnected(session)

    def _disconnected(self, session: _Session) -> None:
        """Mark the station gone; if it went mid-transaction, say so and raise an Alert."""
        cp_id = session.id
        if self._sessions.get(cp_id) is not session:
            return  # a newer socket of the same station took over
        del self._sessions[cp_id]
        self.stats.disconnects += 1
        at = iso_z(utc_now())
        attrs: dict[str, Any] = {"connected": prop(False, at)}
        active = self.state(cp_id).active()
        if self._closing or not active:
            self._write(cp_id, attrs)
            return
        for tx in active:
            tx.status = "interrupted"
            attrs["transactionId"] = prop(tx.transaction_id, at)
        attrs["status"] = prop("Unavailable", at)
        attrs["transactionStatus"] = prop("interrupted", at)
        self._write(cp_id, attrs)
        self.client.upsert([disconnect_alert(cp_id, tx, at) for tx in active], replace=False)
        self.stats.interrupted_transactions += len(active)
        self.stats.alerts += len(active)
        log.warning("OCPP: station %s disconnected during %d transaction(s)", cp_id, len(active))

    # -- what stations report -----------------------------------------------------------
    def state(self, cp_id: str) -> StationState:
        return self._states.setdefault(cp_id, StationState(cp_id))

    def _write(self, cp_id: str, attrs: dict[str, Any]) -> None:
        if attrs:
            self.client.upsert([station_entity(cp_id, attrs)], replace=False)

    def record_boot(self, cp_id: str, station: dict[str, Any], reason: str) -> None:
        at = iso_z(utc_now())
        attrs = {"manufacturerName": prop(station.get("vendor_name"), at)}
        attrs["modelName"] = prop(station.get("model"), at)
        for key, name in (
            ("serial_number", "serialNumber"),
            ("firmware_version", "firmwareVersion"),
        ):
            if station.get(key):
                attrs[name] = prop(station[key], at)
        attrs["bootReason"] = prop(reason, at)
        self._write(cp_id, attrs)

    def record_status(self, cp_id: str, status: str, timestamp: str, evse_id: int) -> None:
        at = observed(timestamp, utc_now())
        self._write(cp_id, {"status": prop(status, at), "evseId": prop(evse_id, at)})

    def authorize(self, id_token: str) -> str:
        """Accepted for a token on the allow-list, else Invalid."""
        if id_token in self.id_tokens:
            return "Accepted"
        self.stats.authorizations_refused += 1
        return "Invalid"

    def record_transaction(
        self,
        cp_id: str,
        event_type: str,
        timestamp: str,
        info: dict[str, Any],
        evse_id: int | None,
        meter_values: list[dict[str, Any]],
    ) -> None:
        """Follow a transaction through Started / Updated / Ended and keep its readings."""
        state = self.state(cp_id)
        at = observed(timestamp, utc_now())
        tx = self._transaction(state, str(info["transaction_id"]), evse_id, at)
        tx.status = "ended" if event_type == "Ended" else "active"
        tx.charging_state = info.get("charging_state", tx.charging_state)
        attrs = {"transactionId": prop(tx.transaction_id, at)}
        attrs["transactionStatus"] = prop(tx.status, at)
        if tx.charging_state:
            attrs["chargingState"] = prop(tx.charging_state, at)
        self.record_meter_values(cp_id, tx.evse_id, meter_values, tx)
        if event_type == "Ended":
            tx.stopped_reason = info.get("stopped_reason", "Local")
            tx.power_w = 0.0
            attrs["powerKw"] = prop(0.0, at, "KWT")
            attrs["stoppedReason"] = prop(tx.stopped_reason, at)
            state.finished.append(state.transactions.pop(tx.transaction_id))
        self._write(cp_id, attrs)

    def _transaction(
        self, state: StationState, tid: str, evse_id: int | None, at: str
    ) -> Transaction:
        tx = state.transactions.get(tid)
        if tx is None:
            tx = Transaction(tid, evse_id or 0, started_at=at)
            state.transactions[tid] = tx
        elif evse_id is not None:
            tx.evse_id = evse_id
        return tx

    def record_meter_values(
        self,
        cp_id: str,
        evse_id: int,
        meter_values: list[dict[str, Any]],
        tx: Transaction | None = None,
    ) -> None:
        """Write each believable reading (one write per timestamp, so history keeps them)."""
        for meter_value in meter_values:
            at = observed(meter_value.get("timestamp"), utc_now())
            attrs: dict[str, Any] = {}
            for sample in meter_value.get("sampled_value") or []:
                reading = self._believe(cp_id, evse_id, sample, at, tx)
                if reading is not None:
                    attrs.update(reading_attrs(reading, tx))
            self._write(cp_id, attrs)

    def _believe(
        self,
        cp_id: str,
        evse_id: int,
        sample: dict[str, Any],
        at: str,
        tx: Transaction | None,
    ) -> Reading | None:
        """The checked reading, or None (refused: logged and counted; or not one we use)."""
        state = self.state(cp_id)
        try:
            reading = read_sample(sample, at)
            if reading is not None and reading.measurand == ENERGY:
                check_energy_rate(state.last_energy.get(evse_id), reading)
        except EnergyError as refused:
            self.stats.readings_refused += 1
            self.stats.refusals.append(f"{cp_id} EVSE {evse_id}: {refused}")
            log.warning("OCPP: refused a reading from %s EVSE %s: %s", cp_id, evse_id, refused)
            return None
        if reading is not None:
            self.stats.readings_accepted += 1
            _remember(state, evse_id, reading, tx)
        return reading

    # -- what we send -------------------------------------------------------------------
    async def set_charging_profile(
        self,
        cp_id: str,
        limit_kw: float,
        valid_from: datetime,
        valid_to: datetime,
        *,
        evse_id: int = 0,
        purpose: str = "TxDefaultProfile",
    ) -> str:
        """Cap a station at ``limit_kw`` from ``valid_from`` to ``valid_to``; the station's
        answer (``Accepted``, ``Rejected``). ``evse_id`` 0: the whole station."""
        seconds = (as_utc(valid_to) - as_utc(valid_from)).total_seconds()
        period_s = max(1, int(seconds))
        return await self._send_profile(
            cp_id, [limit_kw], valid_from, period_s, valid_to, evse_id, purpose
        )

    async def set_charging_schedule(
        self,
        cp_id: str,
        limits_kw: list[float],
        start: datetime,
        *,
        period_s: int = 3600,
        evse_id: int = 0,
        purpose: str = "TxDefaultProfile",
    ) -> str:
        """Send a schedule: ``limits_kw[i]`` applies from ``start + i * period_s`` (hourly by
        default); the station's answer."""
        valid_to = as_utc(start) + timedelta(seconds=period_s * max(1, len(limits_kw)))
        return await self._send_profile(
            cp_id, list(limits_kw), start, period_s, valid_to, evse_id, purpose
        )

    async def _send_profile(
        self,
        cp_id: str,
        limits_kw: list[float],
        start: datetime,
        period_s: int,
        valid_to: datetime,
        evse_id: int,
        purpose: str,
    ) -> str:
        session = self._session(cp_id)
        limits_w = [k * 1000.0 if _is_number(k) else k for k in limits_kw]
        tid = None
        if purpose == "TxProfile":
            tx = self._active_transaction(cp_id, evse_id)
            tid, evse_id = tx.transaction_id, tx.evse_id
        self._profile_ids += 1
        profile = charging_profile(
            self._profile_ids, limits_w, start, period_s, valid_to, purpose=purpose,
            transaction_id=tid,
        )  # fmt: skip
        status = await session.request(call.SetChargingProfile(evse_id, profile))
        log.info("OCPP: %s answered SetChargingProfile %s: %s", cp_id, limits_kw, status)
        if status == "Accepted":
            self._write(cp_id, {"chargingProfile": prop(_profile_summary(profile), _now())})
        return status

    def _session(self, cp_id: str) -> _Session:
        session = self._sessions.get(cp_id)
        if session is None:
            known = "is not connected now" if cp_id in self._states else "has never connected"
            raise StationNotConnectedError(
                f"charging station {cp_id!r} {known}; connected: {self.connected() or 'none'}"
            )
        return session

    def _active_transaction(self, cp_id: str, evse_id: int) -> Transaction:
        active = [
            t for t in self.state(cp_id).active() if evse_id in (0, t.evse_id)
        ]  # fmt: skip
        if len(active) != 1:
            raise ChargingProfileError(
                f"a TxProfile needs one active transaction on {cp_id} EVSE {evse_id}; "
                f"found {len(active)} (name the EVSE, or send a TxDefaultProfile)"
            )
        return active[0]


class _Session(ChargePoint):
    """One station's socket, speaking OCPP 2.0.1: translates each call for the
    :class:`CentralSystem` and answers it."""

    def __init__(self, cp_id: str, connection: ServerConnection, central: CentralSystem):
        super().__init__(cp_id, connection, response_timeout=central.response_timeout_s)
        self.connection = connection
        self.central = central

    async def request(self, payload: Any) -> str:
        """Send a call and return the ``status`` of the answer; a CallError, no answer in
        time or a closed socket raise an :class:`EnergyError` naming the station."""
        action = type(payload).__name__
        try:
            result = await self.call(payload, suppress=False)
        except TimeoutError:
            raise ProtocolError(
                f"station {self.id} did not answer {action} within "
                f"{self.central.response_timeout_s:g} s; is it still connected?"
            ) from None
        except OCPPError as error:
            raise ProtocolError(f"station {self.id} refused {action}: {error}") from error
        except ConnectionClosed:
            raise StationNotConnectedError(
                f"station {self.id} disconnected before answering {action}"
            ) from None
        return str(result.status)

    @on(Action.boot_notification)
    def on_boot(
        self, charging_station: dict[str, Any], reason: str, **_: Any
    ) -> call_result.BootNotification:
        self.central.stats.messages += 1
        self.central.record_boot(self.id, charging_station, reason)
        return call_result.BootNotification(
            current_time=_now(), interval=self.central.heartbeat_interval_s, status="Accepted"
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        self.central.stats.messages += 1
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, **_: Any
    ) -> call_result.StatusNotification:
        self.central.stats.messages += 1
        self.central.record_status(self.id, connector_status, timestamp, evse_id)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> call_result.Authorize:
        self.central.stats.messages += 1
        status = self.central.authorize(str(id_token.get("id_token", "")))
        return call_result.Authorize(id_token_info=IdTokenInfoType(status=status))

    @on(Action.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        transaction_info: dict[str, Any],
        meter_value: list[dict[str, Any]] | None = None,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> call_result.TransactionEvent:
        self.central.stats.messages += 1
        evse_id = evse.get("id") if evse else None
        self.central.record_transaction(
            self.id, event_type, timestamp, transaction_info, evse_id, meter_value or []
        )
        if id_token is None:
            return call_result.TransactionEvent()
        status = self.central.authorize(str(id_token.get("id_token", "")))
        return call_result.TransactionEvent(id_token_info=IdTokenInfoType(status=status))

    @on(Action.meter_values)
    def on_meter_values(
        self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> call_result.MeterValues:
        self.central.stats.messages += 1
        state = self.central.state(self.id)
        tx = next((t for t in state.active() if t.evse_id == evse_id), None)
        self.central.record_meter_values(self.id, evse_id, meter_value, tx)
        return call_result.MeterValues()


def station_from_path(path: str) -> str | None:
    """The station id in ``/ocpp/{id}`` (query string ignored), or None."""
    match = _PATH.match(urlsplit(path).path)
    return match.group("cp_id") if match else None


def _remember(state: StationState, evse_id: int, reading: Reading, tx: Transaction | None) -> None:
    """Keep a believed reading: the rate check's reference, and the session's totals."""
    if reading.measurand == ENERGY:
        state.last_energy[evse_id] = reading
        if tx is not None:
            if tx.first_energy_wh is None:
                tx.first_energy_wh = reading.value
            tx.energy_wh = reading.value
    elif tx is not None:
        tx.power_w = reading.value


def _profile_summary(profile: dict[str, Any]) -> dict[str, Any]:
    """The accepted profile as the hub keeps it: in kW, one limit per period."""
    schedule = profile["charging_schedule"][0]
    periods = schedule["charging_schedule_period"]
    return {
        "purpose": profile["charging_profile_purpose"],
        "validFrom": profile["valid_from"],
        "validTo": profile["valid_to"],
        "periodStartsS": [p["start_period"] for p in periods],
        "limitsKw": [round(p["limit"] / 1000.0, 3) for p in periods],
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _now() -> str:
    return iso_z(utc_now())

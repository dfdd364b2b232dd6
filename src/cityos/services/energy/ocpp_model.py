"""What an OCPP 2.0.1 charging station tells the central system, in CityOS terms.

Pure functions and small records, no I/O, so that :mod:`.ocpp` only has to talk: a sampled
meter value becomes a checked :class:`Reading` (or a :class:`BadReadingError` saying why it
cannot be true), station facts become NGSI-LD normalized attributes of a FIWARE
``EVChargingStation`` (dataModel.Transportation), a charger lost mid-charge becomes a FIWARE
``Alert`` (dataModel.Alert), and a limit in kW becomes an OCPP ``ChargingProfileType``.

Units: OCPP speaks Wh and W (or kWh and kW, with a power-of-ten ``multiplier``); the hub gets
kWh (unitCode ``KWH``) and kW (``KWT``). Every time written is ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from .errors import BadReadingError, EnergyError

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
# The measurands the service uses, and the factor from each unit OCPP allows to Wh / W.
_UNITS: dict[str, dict[str, float]] = {
    ENERGY: {"Wh": 1.0, "kWh": 1000.0},
    POWER: {"W": 1.0, "kW": 1000.0},
}
_DEFAULT_UNIT = {ENERGY: "Wh", POWER: "W"}

MAX_CONNECTOR_POWER_W = 1_000_000.0  # above 1 MW on one connector a reading is not believed
MAX_REGISTER_WH = 1e10  # 10 GWh: a megawatt connector running flat out for a millennium

STATION_TYPE = "EVChargingStation"
PURPOSES = ("TxDefaultProfile", "TxProfile")


class ChargingProfileError(EnergyError, ValueError):
    """A charging limit or schedule that no station could follow (negative, not a number,
    ending before it starts, or asking a TxProfile where no transaction runs)."""


@dataclass(frozen=True)
class Reading:
    """One believable sampled value: energy in Wh (the import register) or power in W."""

    measurand: str
    value: float
    observed_at: str


@dataclass
class Transaction:
    """A charging session as the station reported it; ``status`` is ``active``, ``ended``
    or ``interrupted`` (the station went away while it was active)."""

    transaction_id: str
    evse_id: int
    started_at: str
    status: str = "active"
    charging_state: str | None = None
    first_energy_wh: float | None = None
    energy_wh: float | None = None
    power_w: float | None = None
    stopped_reason: str | None = None

    def energy_kwh(self) -> float | None:
        """Energy delivered so far in this session (register now minus at its first reading)."""
        if self.energy_wh is None or self.first_energy_wh is None:
            return None
        return round((self.energy_wh - self.first_energy_wh) / 1000.0, 3)


@dataclass
class StationState:
    """What the central system remembers of one station across its connections: a charger
    that reconnects (it does not boot again) keeps its transactions."""

    cp_id: str
    transactions: dict[str, Transaction] = field(default_factory=dict)
    finished: deque[Transaction] = field(default_factory=lambda: deque(maxlen=20))
    last_energy: dict[int, Reading] = field(default_factory=dict)

    def active(self) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.status == "active"]


@dataclass
class OcppStats:
    """Counters a health check or benchmark can read; ``refusals`` keeps the latest reasons."""

    messages: int = 0
    readings_accepted: int = 0
    readings_refused: int = 0
    authorizations_refused: int = 0
    disconnects: int = 0
    interrupted_transactions: int = 0
    alerts: int = 0
    refusals: deque[str] = field(default_factory=lambda: deque(maxlen=50))


# -- time -------------------------------------------------------------------------------
def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Aware in UTC; a naive time is taken as UTC already (OCPP times are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """``2024-05-01T12:00:00.000Z``: the form every ``observedAt`` in the hub takes."""
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def observed(timestamp: Any, fallback: datetime) -> str:
    """The station's own time of a value in ``Z`` form; ``fallback`` (time received) when
    it sent none or one that does not parse, so that the value is still kept."""
    if isinstance(timestamp, str):
        try:
            return iso_z(datetime.fromisoformat(timestamp))
        except ValueError:
            pass
    return iso_z(fallback)


# -- readings -----------------------------------------------------------------------------
def read_sample(sample: dict[str, Any], observed_at: str) -> Reading | None:
    """A sampled value the service uses, checked; None for measurands, phases and locations
    it does not use (per-phase values would overwrite the total).

    Raises :class:`BadReadingError` for a value that cannot be true: not a finite number,
    negative for an import quantity, above 1 MW, or in a unit OCPP does not define for it."""
    measurand = sample.get("measurand", ENERGY)  # the default measurand in OCPP 2.0.1
    if (
        measurand not in _UNITS
        or sample.get("phase")
        or sample.get("location", "Outlet") != ("Outlet")
    ):
        return None
    value = _number(sample.get("value"), measurand)
    unit_of_measure = sample.get("unit_of_measure") or {}
    unit = unit_of_measure.get("unit", _DEFAULT_UNIT[measurand])
    if unit not in _UNITS[measurand]:
        raise BadReadingError(f"{measurand} in {unit!r}: expected one of {list(_UNITS[measurand])}")
    multiplier = unit_of_measure.get("multiplier", 0)
    if not isinstance(multiplier, int) or not -3 <= multiplier <= 6:
        raise BadReadingError(f"{measurand}: unit multiplier {multiplier!r} is not an integer")
    scaled = value * _UNITS[measurand][unit] * 10.0**multiplier
    _check_range(measurand, scaled)
    return Reading(measurand, scaled, observed_at)


def _number(value: Any, measurand: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise BadReadingError(f"{measurand}: {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise BadReadingError(f"{measurand}: {value!r} is not a finite number")
    return number


def _check_range(measurand: str, value: float) -> None:
    if value < 0:
        raise BadReadingError(f"{measurand}: {value:g} is negative for an import quantity")
    if measurand == POWER and value > MAX_CONNECTOR_POWER_W:
        raise BadReadingError(f"{POWER}: {value:g} W is above 1 MW for one connector")
    if measurand == ENERGY and value > MAX_REGISTER_WH:
        raise BadReadingError(f"{ENERGY}: {value:g} Wh is beyond any meter's register")


def check_energy_rate(previous: Reading | None, reading: Reading) -> None:
    """Refuse a register that rose faster than 1 MW could have filled it since the last
    reading believed on the same EVSE. A fall is allowed: many stations count per session."""
    if previous is None or reading.value <= previous.value:
        return
    hours = (_parse(reading.observed_at) - _parse(previous.observed_at)) / timedelta(hours=1)
    if hours <= 0:
        return
    watts = (reading.value - previous.value) / hours
    if watts > MAX_CONNECTOR_POWER_W:
        raise BadReadingError(
            f"{ENERGY}: rose {reading.value - previous.value:g} Wh in {hours * 3600:g} s "
            f"({watts / 1000:g} kW average), above 1 MW for one connector"
        )


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


# -- entities -----------------------------------------------------------------------------
def station_id(cp_id: str) -> str:
    return f"urn:ngsi-ld:{STATION_TYPE}:{quote(cp_id, safe='')}"


def prop(value: Any, observed_at: str, unit: str | None = None) -> dict[str, Any]:
    """An NGSI-LD Property with the time the station (or the CSMS) observed it."""
    out: dict[str, Any] = {"type": "Property", "value": value, "observedAt": observed_at}
    if unit:
        out["unitCode"] = unit
    return out


def station_entity(cp_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The station entity carrying only ``attrs`` (written with ``replace=False``)."""
    return {"id": station_id(cp_id), "type": STATION_TYPE, **attrs}


def reading_attrs(reading: Reading, tx: Transaction | None) -> dict[str, Any]:
    """The station attributes one reading updates."""
    at = reading.observed_at
    if reading.measurand == POWER:
        return {"powerKw": prop(round(reading.value / 1000.0, 3), at, "KWT")}
    attrs = {"energyImportedKwh": prop(round(reading.value / 1000.0, 3), at, "KWH")}
    if tx is not None and (kwh := tx.energy_kwh()) is not None:
        attrs["transactionEnergyKwh"] = prop(kwh, at, "KWH")
    return attrs


def disconnect_alert(cp_id: str, tx: Transaction, at: str) -> dict[str, Any]:
    """A FIWARE Alert: the station went away while it was charging (power cut, network,
    a crash); the session's outcome is unknown until it comes back."""
    energy = tx.energy_kwh()
    delivered = f", {energy:g} kWh delivered so far" if energy is not None else ""
    return {
        "id": f"urn:ngsi-ld:Alert:energy:chargerDisconnected:{quote(cp_id, safe='')}:"
        f"{quote(tx.transaction_id, safe='')}",
        "type": "Alert",
        "category": {"type": "Property", "value": "energy"},
        "subCategory": {"type": "Property", "value": "chargerDisconnected"},
        "severity": {"type": "Property", "value": "medium"},
        "description": {
            "type": "Property",
            "value": f"charging station {cp_id} disconnected during transaction "
            f"{tx.transaction_id} on EVSE {tx.evse_id}{delivered}",
        },
        "dateIssued": {"type": "Property", "value": {"@type": "DateTime", "@value": at}},
        "alertSource": {"type": "Relationship", "object": station_id(cp_id)},
    }


# -- charging profiles --------------------------------------------------------------------
def charging_profile(
    profile_id: int,
    limits_w: list[float],
    start: datetime,
    period_s: int,
    valid_to: datetime,
    *,
    purpose: str = "TxDefaultProfile",
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """An absolute OCPP 2.0.1 ChargingProfileType in W: one schedule period per limit, each
    ``period_s`` long from ``start``, the profile valid until ``valid_to``. Keys are
    snake_case, as the ``ocpp`` package turns them into the wire's camelCase."""
    check_limits(limits_w)
    start, valid_to = as_utc(start), as_utc(valid_to)
    if valid_to <= start:
        raise ChargingProfileError(f"the profile ends ({valid_to}) before it starts ({start})")
    if purpose not in PURPOSES:
        raise ChargingProfileError(f"purpose {purpose!r}: use one of {list(PURPOSES)}")
    profile: dict[str, Any] = {
        "id": profile_id,
        "stack_level": 0,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Absolute",
        "valid_from": iso_z(start),
        "valid_to": iso_z(valid_to),
        "charging_schedule": [
            {
                "id": profile_id,
                "start_schedule": iso_z(start),
                "duration": math.ceil((valid_to - start).total_seconds()),
                "charging_rate_unit": "W",
                "charging_schedule_period": [
                    {"start_period": i * period_s, "limit": round(w, 1)}
                    for i, w in enumerate(limits_w)
                ],
            }
        ],
    }
    if transaction_id is not None:
        profile["transaction_id"] = transaction_id
    return profile


def check_limits(limits_w: list[float]) -> None:
    """Limits a station can follow: at least one, each a finite number of W, not negative."""
    if not limits_w:
        raise ChargingProfileError("a charging schedule needs at least one limit")
    for w in limits_w:
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ChargingProfileError(f"charging limit {w!r} W: give a finite number >= 0")

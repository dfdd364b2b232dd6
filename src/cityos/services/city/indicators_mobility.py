"""Mobility indicators: signals, traffic monitoring, public transport, fares, parking."""

from __future__ import annotations

from typing import Any

from .indicators_data import (
    CityData,
    length_m,
    local_id,
    metres,
    number_of,
    point,
    refs,
    time_of,
    value_of,
    words,
)
from .indicators_energy import RESIDENTIAL, buildings
from .indicators_model import (
    DAYS_PER_YEAR,
    CityFacts,
    Indicator,
    Measured,
    Outcome,
    Period,
    Read,
    nothing,
    share,
)

ADAPTIVE_COMMAND = "setPhase"  # the traffic service's command: it times that signal
CLEAN_FUELS = frozenset({"electric", "hydrogen"})
TRANSIT_WALK_M = 500.0
FLOW_READINGS = ("intensity", "averageVehicleSpeed", "occupancy")


def adaptive_signal_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    signals = data.entities("TrafficSignal")
    if not signals:
        return nothing("TrafficSignal")
    adaptive = sum(
        1
        for s in signals
        if ADAPTIVE_COMMAND in s or str(value_of(s, "controlMode", "")).lower() == "adaptive"
    )
    return share(adaptive, len(signals))


def monitored_street_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    segments = {s["id"]: length_m(s) for s in data.entities("RoadSegment")}
    segments = {k: v for k, v in segments.items() if v > 0}
    if not segments:
        return nothing("RoadSegment", why="no RoadSegment with a length or a LineString in the hub")
    flows = data.entities("TrafficFlowObserved")
    if not flows:
        return nothing("TrafficFlowObserved")
    watched = {
        seg
        for f in flows
        if data.reported(f, FLOW_READINGS, period)
        for seg in refs(f, "refRoadSegment")
    }
    covered = sum(length for seg, length in segments.items() if seg in watched)
    total = sum(segments.values())
    return share(covered, total, unit="m", segments_monitored=len(watched & segments.keys()))


def _live_buses(data: CityData, period: Period) -> list[dict[str, Any]]:
    return [v for v in _buses(data) if data.reported(v, ["location"], period)]


def _buses(data: CityData) -> list[dict[str, Any]]:
    """Public transport vehicles: vehicleType bus, or on a trip."""
    return [
        v
        for v in data.entities("Vehicle")
        if "bus" in words(v, "vehicleType") or value_of(v, "tripId") is not None
    ]


def realtime_line_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    routes = data.entities("GtfsRoute")
    if not routes:
        return nothing(
            "GtfsRoute",
            why="no GtfsRoute in the hub (the lines of the static "
            "timetable); the traffic service keeps GTFS as a file",
        )
    live = {str(value_of(v, "routeId")) for v in _live_buses(data, period)}
    count = sum(1 for r in routes if local_id(r["id"]) in live)
    return share(count, len(routes), vehicles_live=len(live))


def _fares(data: CityData, period: Period) -> list[dict[str, Any]]:
    return [
        f
        for f in data.entities("FareCollectionObserved")
        if period.contains(time_of(f, "dateObservedFrom"))
    ]


def unified_payment_stop_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    stops = data.entities("GtfsStop")
    if not stops:
        return nothing("GtfsStop")
    fares = _fares(data, period)
    if not fares:
        return nothing(
            "FareCollectionObserved",
            why="no FareCollectionObserved for a day in "
            "the period (the payments service writes one per stop and day)",
        )
    paid = {
        s for f in fares if (number_of(f, "cashlessCount") or 0) > 0 for s in refs(f, "refStop")
    }
    return share(sum(1 for s in stops if s["id"] in paid), len(stops))


def cashless_fare_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    fares = _fares(data, period)
    riders = sum(number_of(f, "passengerCount") or 0 for f in fares)
    if riders <= 0:
        return nothing(
            "FareCollectionObserved",
            why="no boarding counted in a FareCollectionObserved of the period",
        )
    cashless = sum(number_of(f, "cashlessCount") or 0 for f in fares)
    return share(cashless, riders)


def transit_trips_per_capita(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    fares = _fares(data, period)
    days = {t.date() for f in fares if (t := time_of(f, "dateObservedFrom")) is not None}
    riders = sum(number_of(f, "passengerCount") or 0 for f in fares)
    if not days:
        return nothing(
            "FareCollectionObserved", why="no FareCollectionObserved for a day in the period"
        )
    per_year = riders / len(days) * DAYS_PER_YEAR
    people = facts.require("population")
    return Measured(per_year / people, {"boardings": riders, "days": len(days)})


def transit_access_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    homes = [p for b in buildings(data, RESIDENTIAL) if (p := point(b)) is not None]
    if not homes:
        return nothing("Building", why="no residential Building with a location in the hub")
    stops = [p for s in data.entities("GtfsStop") if (p := point(s)) is not None]
    if not stops:
        return nothing("GtfsStop")
    near = sum(1 for h in homes if any(_within(h, s, TRANSIT_WALK_M) for s in stops))
    return share(near, len(homes))


def _within(a: tuple[float, float], b: tuple[float, float], limit: float) -> bool:
    east, north = metres(a, b)
    return east * east + north * north <= limit * limit


def travel_time_index(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    segments = {s["id"]: s for s in data.entities("RoadSegment")}
    actual = free = 0.0
    sensors = 0
    for flow in data.entities("TrafficFlowObserved"):
        segment = next((segments[r] for r in refs(flow, "refRoadSegment") if r in segments), None)
        if segment is None:
            continue
        limit = number_of(segment, "maximumAllowedSpeed")
        length = length_m(segment)
        speeds = [v for _, v in data.numbers(flow, "averageVehicleSpeed", period) if v > 0]
        if not speeds or not limit or limit <= 0 or length <= 0:
            continue
        actual += sum(length / v for v in speeds) / len(speeds)
        free += length / limit
        sensors += 1
    if not sensors:
        return nothing(
            "TrafficFlowObserved",
            "RoadSegment",
            why="no TrafficFlowObserved "
            "speed in the period on a RoadSegment with a length and a "
            "maximumAllowedSpeed",
        )
    return Measured(actual / free, {"sensors": sensors})


def average_bus_delay(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    delays = [d for v in _buses(data) for _, d in data.numbers(v, "delay", period)]
    if not delays:
        return nothing("Vehicle", why="no bus (Vehicle) reported a delay in the period")
    return Measured(sum(delays) / len(delays), {"readings": len(delays)})


def clean_bus_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    fuels = [words(v, "fuelType") for v in _buses(data) if "fuelType" in v]
    if not fuels:
        return nothing("Vehicle", why="no bus (Vehicle) says its fuelType")
    return share(sum(1 for f in fuels if f & CLEAN_FUELS), len(fuels))


def _parking_spaces(data: CityData) -> list[tuple[dict[str, Any], float, str]]:
    """(entity, spaces, kind) for every parking site and single spot."""
    out = []
    for kind in ("OffStreetParking", "OnStreetParking"):
        for p in data.entities(kind):
            spaces = number_of(p, "totalSpotNumber") or 0.0
            if spaces > 0:
                out.append((p, spaces, kind))
    out += [(p, 1.0, "ParkingSpot") for p in data.entities("ParkingSpot")]
    return out


def realtime_parking_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    sites = _parking_spaces(data)
    if not sites:
        return nothing("OffStreetParking", "OnStreetParking", "ParkingSpot")
    live = sum(
        spaces
        for p, spaces, kind in sites
        if data.reported(
            p, ["status"] if kind == "ParkingSpot" else ["availableSpotNumber"], period
        )
    )
    return share(live, sum(s for _, s, _ in sites))


def epayment_parking_share(data: CityData, facts: CityFacts, period: Period) -> Outcome:
    sites = [(p, s) for p, s, kind in _parking_spaces(data) if kind != "ParkingSpot"]
    if not sites:
        return nothing("OffStreetParking", "OnStreetParking")
    electronic = sum(s for p, s in sites if words(p, "acceptedPaymentMethod") - {"cash"})
    return share(electronic, sum(s for _, s in sites))


_T = "ISO 37122:2019 19.x"
_T_NOTE = (
    "ISO 37122:2019 section 19 (transportation) has '{}'; sub-clause number (19.x) not verified."
)
_STOP = Read("GtfsStop", ("location",))
_FARES = Read(
    "FareCollectionObserved", ("refStop", "passengerCount", "cashlessCount", "dateObservedFrom")
)
_BUS = Read("Vehicle", ("vehicleType", "tripId", "routeId", "location", "delay", "fuelType"))

MOBILITY: tuple[Indicator, ...] = (
    Indicator(
        key="adaptive-traffic-signal-share",
        name="Traffic signals under adaptive control",
        standards=(_T, "U4SSC EC/ICT/Transport: Intersection control"),
        unit="%",
        formula="100 × TrafficSignals the traffic service commands (a setPhase command) or "
        "with controlMode 'adaptive' / TrafficSignals",
        reads=(Read("TrafficSignal", (ADAPTIVE_COMMAND, "controlMode")),),
        compute=adaptive_signal_share,
        theme="mobility",
        reference_note=_T_NOTE.format("percentage of traffic lights that are intelligent/smart"),
    ),
    Indicator(
        key="traffic-monitored-street-share",
        name="Streets covered by real-time traffic information",
        standards=(_T, "U4SSC EC/ICT/Transport: Traffic monitoring"),
        unit="%",
        formula="100 × length of RoadSegments with a TrafficFlowObserved (refRoadSegment) "
        "reporting in the period / length of all RoadSegments",
        reads=(
            Read("RoadSegment", ("length", "location")),
            Read("TrafficFlowObserved", ("refRoadSegment",) + FLOW_READINGS),
        ),
        compute=monitored_street_share,
        theme="mobility",
        reference_note=_T_NOTE.format(
            "percentage of city streets and thoroughfares covered "
            "by real-time online traffic alerts and information"
        ),
    ),
    Indicator(
        key="realtime-transit-line-share",
        name="Public transport lines with real-time information",
        standards=(_T,),
        unit="%",
        formula="100 × GtfsRoutes with a Vehicle (routeId) reporting its location in the "
        "period / GtfsRoutes",
        reads=(Read("GtfsRoute"), _BUS),
        compute=realtime_line_share,
        theme="mobility",
        reference_note=_T_NOTE.format(
            "percentage of public transport lines equipped with a "
            "publicly accessible real-time system"
        ),
    ),
    Indicator(
        key="unified-payment-stop-share",
        name="Public transport stops in the unified (cashless) fare system",
        standards=(_T,),
        unit="%",
        formula="100 × GtfsStops with a cashless boarding in a FareCollectionObserved "
        "(refStop) of the period / GtfsStops",
        reads=(_STOP, _FARES),
        compute=unified_payment_stop_share,
        theme="mobility",
        reference_note=_T_NOTE.format(
            "percentage of the city's public transport services covered by a unified payment system"
        )
        + " Stops stand in for services.",
    ),
    Indicator(
        key="cashless-fare-share",
        name="Public transport boardings paid cashless",
        standards=("CityOS",),
        unit="%",
        formula="100 × Σ cashlessCount / Σ passengerCount of the period's FareCollectionObserved",
        reads=(_FARES,),
        compute=cashless_fare_share,
        theme="mobility",
        reference_note="the payments service's cashless_share, over the whole period",
    ),
    Indicator(
        key="transit-trips-per-capita",
        name="Public transport trips per capita",
        standards=("ISO 37120:2018 19.x",),
        unit="trips/year per capita",
        formula="Σ passengerCount / days with a FareCollectionObserved × 365 / population",
        reads=(_FARES,),
        compute=transit_trips_per_capita,
        theme="mobility",
        facts=("population",),
        reference_note="ISO 37120:2018 section 19 has 'annual number of public transport trips "
        "per capita'; sub-clause number not verified. Counts boardings (a transfer is two) "
        "on the fare system only.",
    ),
    Indicator(
        key="transit-access-500m",
        name="Homes within 500 m of a public transport stop",
        standards=("U4SSC EC/Infrastructure/Transport: Public transport network convenience",),
        unit="%",
        formula="100 × residential Buildings whose centre is within 500 m of a GtfsStop / "
        "residential Buildings",
        reads=(Read("Building", ("category", "location")), _STOP),
        compute=transit_access_share,
        theme="mobility",
        reference_note="U4SSC counts people; residential buildings stand in for them, and the "
        "stops' service frequency is not checked",
    ),
    Indicator(
        key="travel-time-index",
        name="Travel time index",
        standards=("U4SSC EC/Infrastructure/Transport: Travel time index",),
        unit="ratio",
        formula="Σ sensors' mean (length / averageVehicleSpeed) / Σ (length / "
        "maximumAllowedSpeed) on their RoadSegments",
        reads=(
            Read("TrafficFlowObserved", ("refRoadSegment", "averageVehicleSpeed")),
            Read("RoadSegment", ("length", "maximumAllowedSpeed")),
        ),
        compute=travel_time_index,
        theme="mobility",
        reference_note="U4SSC compares peak to free-flow travel time; this uses every reading "
        "of the period and the speed limit as the free-flow speed",
    ),
    Indicator(
        key="average-bus-delay",
        name="Average bus delay",
        standards=("CityOS",),
        unit="s",
        formula="mean of the delay readings of buses (Vehicle) in the period",
        reads=(_BUS,),
        compute=average_bus_delay,
        theme="mobility",
        reference_note="against the timetable, as the GTFS-realtime feed reports it; early "
        "buses count negative",
    ),
    Indicator(
        key="clean-energy-bus-share",
        name="Buses driven by clean energy",
        standards=(_T,),
        unit="%",
        formula="100 × buses (Vehicle) whose fuelType is electric or hydrogen / buses with a "
        "fuelType",
        reads=(_BUS,),
        compute=clean_bus_share,
        theme="mobility",
        reference_note=_T_NOTE.format(
            "percentage of the city's bus fleet that is motor-driven by clean energy"
        ),
    ),
    Indicator(
        key="realtime-parking-share",
        name="Public parking spaces with real-time availability",
        standards=(_T,),
        unit="%",
        formula="100 × spaces (totalSpotNumber; a ParkingSpot is one) reporting "
        "availableSpotNumber (status) in the period / all spaces",
        reads=(
            Read("OffStreetParking", ("totalSpotNumber", "availableSpotNumber")),
            Read("OnStreetParking", ("totalSpotNumber", "availableSpotNumber")),
            Read("ParkingSpot", ("status",)),
        ),
        compute=realtime_parking_share,
        theme="mobility",
        reference_note=_T_NOTE.format(
            "percentage of public parking spaces equipped with real-time availability systems"
        ),
    ),
    Indicator(
        key="epayment-parking-share",
        name="Public parking spaces with e-payment",
        standards=(_T,),
        unit="%",
        formula="100 × spaces at parkings whose acceptedPaymentMethod has a method other "
        "than cash / all their spaces",
        reads=(
            Read("OffStreetParking", ("totalSpotNumber", "acceptedPaymentMethod")),
            Read("OnStreetParking", ("totalSpotNumber", "acceptedPaymentMethod")),
        ),
        compute=epayment_parking_share,
        theme="mobility",
        reference_note=_T_NOTE.format(
            "percentage of public parking spaces equipped with e-payment systems"
        ),
    ),
)

__all__ = ["MOBILITY"]

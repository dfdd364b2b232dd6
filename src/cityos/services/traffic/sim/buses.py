"""Buses in the simulation: their on-board units, and a run with them on the streets.

The SUMO side of bus priority (:mod:`..priority` holds the decision, which needs no SUMO):
:class:`OnBoardUnits` reads each bus's trip, position and next signal from the running
simulation, :func:`run_with_buses` runs an hour with the timetable's buses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..gtfs_rt import trip_progress
from ..priority import BusPriority, BusReport
from .transit import TransitPlan, to_lonlat

log = logging.getLogger(__name__)


class OnBoardUnits:
    """The buses' on-board units in a simulation: trip, position and next signal of each."""

    def __init__(self, sim: Any, plan: TransitPlan) -> None:
        import sumolib

        self.sim = sim
        self.plan = plan
        self.trips = {t.trip_id: t for t in plan.trips}
        self.net = sumolib.net.readNet(str(plan.net_file))
        self._skip: set[str] = set()  # cars, and buses with no trip

    def read(self) -> list[BusReport]:
        conn = self.sim._conn  # the adapter's SUMO connection (libsumo or TraCI)
        now = self.sim.time
        out: list[BusReport] = []
        for vid in conn.vehicle.getIDList():
            trip = self.trips.get(vid)
            if trip is None:
                if vid not in self._skip:  # each vehicle looked at once, not every step
                    self._skip.add(vid)
                    if conn.vehicle.getVehicleClass(vid) == "bus":
                        log.warning("bus %s runs no trip of the timetable: not reported", vid)
                continue
            edge = conn.vehicle.getRoadID(vid)
            variant = self.plan.variant(vid)
            if edge.startswith(":") or edge not in variant.edges:
                continue  # inside a junction: the next report places it
            x, y = conn.vehicle.getPosition(vid)
            lon, lat = to_lonlat(self.net, x, y)
            ahead = conn.vehicle.getNextTLS(vid)
            tls, lane, exit_lane, dist = None, None, None, None
            if ahead:
                tls, link, dist, _state = ahead[0]
                links = conn.trafficlight.getControlledLinks(tls)
                if link < len(links) and links[link]:
                    lane, exit_lane = links[link][0][0], links[link][0][1]
            distance = variant.distance_at(edge, conn.vehicle.getLanePosition(vid))
            speed = float(conn.vehicle.getSpeed(vid))
            progress = trip_progress(trip.stop_times, now, distance, speed)
            out.append(
                BusReport(
                    vehicle_id=vid,
                    trip_id=vid,
                    route_id=trip.route_id,
                    lon=lon,
                    lat=lat,
                    bearing=float(conn.vehicle.getAngle(vid)),
                    speed_mps=speed,
                    at=now,
                    distance_m=distance,
                    next_signal=tls,
                    approach_lane=lane,
                    to_stop_line_m=dist,
                    delay_s=progress.delay_s,
                    next_stop_sequence=progress.next_stop_sequence,
                    at_stop=progress.stopped,
                    exit_lane=exit_lane,
                )
            )
        return out


def bus_delays(tripinfo_file: Path, bus_ids: set[str]) -> dict[str, float]:
    """Average time loss of buses (scheduled stops excluded, as SUMO counts it) and the
    RESCO delay of everything else, from the trip information."""
    import xml.etree.ElementTree as ET

    bus_loss, bus_n, other, other_n = 0.0, 0, 0.0, 0
    for _, el in ET.iterparse(tripinfo_file):
        if el.tag != "tripinfo":
            continue
        loss = float(el.get("timeLoss", "0"))
        if el.get("id") in bus_ids:
            bus_loss += loss
            bus_n += 1
        else:
            other += loss + float(el.get("departDelay", "0"))
            other_n += 1
        el.clear()
    return {
        "bus_time_loss_s": bus_loss / bus_n if bus_n else 0.0,
        "buses": bus_n,
        "general_delay_s": other / other_n if other_n else 0.0,
        "vehicles": other_n,
    }


def run_with_buses(
    scenario: Any,
    controller: Any,
    plan: TransitPlan,
    *,
    seed: int = 0,
    priority: BusPriority | None = None,
) -> dict[str, Any]:
    """One run with the plan's buses on the streets (and priority when given): the bus
    time loss, the general traffic's RESCO delay, and what priority did."""
    from dataclasses import replace

    from .simulation import Simulation

    sc = replace(
        scenario,
        route_files=(*scenario.route_files, plan.route_file),
        extra_files=(*scenario.extra_files, plan.additional_file),
    )
    ctl = priority if priority is not None else controller
    sim = Simulation(sc, seed=seed, mode="guarded")
    sim.start()
    try:
        units = OnBoardUnits(sim, plan)
        ctl.setup(sim.layouts, sc.step_s)
        while not sim.done:
            observations = sim.observe(sim.guards)
            sim.feed_guards(observations)
            if priority is not None:
                priority.request(units.read())
            now = sim.time
            decisions = [ctl.decide(o, now) for o in observations.values()]
            sim.apply(d for d in decisions if d is not None)
            sim.advance(sc.step_s)
    finally:
        sim.close()
    out = bus_delays(sim.tripinfo_file, {t.trip_id for t in plan.trips})
    out["controller"] = ctl.name
    if priority is not None:
        out["priority"] = {
            "requests": priority.stats.requests,
            "extensions": priority.stats.extensions,
            "early_greens": priority.stats.early_greens,
        }
    return out

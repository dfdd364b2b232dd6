"""Read each signal's layout (lane groups, green phases) straight from the network file.

Reading the XML ourselves does two jobs: it validates the file before libsumo sees it
(libsumo aborts the whole process on a corrupt network), and it gives the lanes the
detectors are placed on before the simulation starts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import NetworkFileError
from ..model import GREEN, GreenPhase, LaneGroup, SignalLayout, is_green_state


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    from_lane: str
    to_lane: str
    from_edge: str
    to_edge: str
    pedestrian: bool


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """The parts of a network the traffic service needs."""

    lane_length: dict[str, float]
    layouts: dict[str, SignalLayout]
    # lane -> [(neighbour lane, direction)] across junctions without a signal (for detectors
    # that must reach past a short lane)
    upstream: dict[str, list[tuple[str, str]]]
    downstream: dict[str, list[tuple[str, str]]]


def read_network(path: Path) -> NetworkInfo:
    """Parse ``path``; a missing or corrupt file raises :class:`NetworkFileError`."""
    if not path.is_file():
        raise NetworkFileError(f"network file {path} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise NetworkFileError(f"network file {path} is not valid XML: {exc}") from exc
    if root.tag != "net":
        raise NetworkFileError(f"network file {path} is not a SUMO network (root <{root.tag}>)")

    lane_length: dict[str, float] = {}
    edge_function: dict[str, str] = {}
    for edge in root.iter("edge"):
        edge_function[edge.get("id", "")] = edge.get("function", "normal")
        for lane in edge.iter("lane"):
            lane_length[lane.get("id", "")] = float(lane.get("length", "0"))

    links: dict[str, list[Link]] = defaultdict(list)
    upstream: dict[str, list[tuple[str, str]]] = defaultdict(list)
    downstream: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for conn in root.iter("connection"):
        tl = conn.get("tl")
        src, dst = conn.get("from", ""), conn.get("to", "")
        if tl is None:
            if edge_function.get(src) == "normal" and edge_function.get(dst) == "normal":
                a, b = f"{src}_{conn.get('fromLane')}", f"{dst}_{conn.get('toLane')}"
                upstream[b].append((a, conn.get("dir", "s")))
                downstream[a].append((b, conn.get("dir", "s")))
            continue
        pedestrian = edge_function.get(src) in ("walkingarea", "crossing") or edge_function.get(
            dst
        ) in ("walkingarea", "crossing")
        links[tl].append(
            Link(
                index=int(conn.get("linkIndex", "-1")),
                from_lane=f"{src}_{conn.get('fromLane')}",
                to_lane=f"{dst}_{conn.get('toLane')}",
                from_edge=src,
                to_edge=dst if edge_function.get(dst) != "crossing" else dst,
                pedestrian=pedestrian,
            )
        )

    layouts: dict[str, SignalLayout] = {}
    for logic in root.iter("tlLogic"):
        tls_id = logic.get("id", "")
        if tls_id in layouts:  # several programs: the first is the network's default
            continue
        states = [p.get("state", "") for p in logic.iter("phase")]
        layouts[tls_id] = _layout(
            tls_id, logic.get("programID", "0"), states, links.get(tls_id, [])
        )
    return NetworkInfo(lane_length, layouts, dict(upstream), dict(downstream))


def _layout(
    tls_id: str,
    program_id: str,
    states: list[str],
    links: list[Link],
) -> SignalLayout:
    green: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, state in enumerate(states):
        if is_green_state(state) and state not in seen:
            seen.add(state)
            green.append((i, state))

    def is_on(state: str, index: int) -> bool:
        return 0 <= index < len(state) and state[index] in GREEN

    # Approach lanes grouped by (edge, phases that serve the lane).
    lane_phases: dict[str, set[int]] = defaultdict(set)
    for link in links:
        if not link.pedestrian:
            for k, (_, state) in enumerate(green):
                if is_on(state, link.index):
                    lane_phases[link.from_lane].add(k)
    groups: dict[str, LaneGroup] = {}
    lane_group: dict[str, str] = {}
    members: dict[tuple[str, tuple[int, ...]], list[str]] = defaultdict(list)
    for link in links:
        if link.pedestrian:
            continue
        key = (link.from_edge, tuple(sorted(lane_phases[link.from_lane])))
        if link.from_lane not in members[key]:
            members[key].append(link.from_lane)
    for (edge, phases), lanes in sorted(members.items()):
        gid = f"{edge}>{'.'.join(map(str, phases)) or 'none'}"
        groups[gid] = LaneGroup(gid, "approach", edge, tuple(sorted(lanes)))
        for lane in lanes:
            lane_group[lane] = gid
    exits: dict[str, list[str]] = defaultdict(list)
    for link in links:
        if not link.pedestrian and link.to_lane not in exits[link.to_edge]:
            exits[link.to_edge].append(link.to_lane)
    for edge, lanes in sorted(exits.items()):
        gid = f"{edge}<"
        groups[gid] = LaneGroup(gid, "exit", edge, tuple(sorted(lanes)))
    for link in links:
        if link.pedestrian:
            gid = f"{link.to_edge if link.to_edge.startswith(':') else link.from_edge}~"
            groups.setdefault(gid, LaneGroup(gid, "crossing", gid[:-1], ()))

    phases: list[GreenPhase] = []
    for k, (program_index, state) in enumerate(green):
        serves: list[str] = []
        movements: list[tuple[str, str]] = []
        pedestrian = False
        for link in links:
            if not is_on(state, link.index):
                continue
            if link.pedestrian:
                pedestrian = True
                gid = f"{link.to_edge if link.to_edge.startswith(':') else link.from_edge}~"
            else:
                gid = lane_group[link.from_lane]
                move = (gid, f"{link.to_edge}<")
                if move not in movements:
                    movements.append(move)
            if gid not in serves:
                serves.append(gid)
        phases.append(
            GreenPhase(k, program_index, state, tuple(serves), tuple(movements), pedestrian)
        )
    link_count = max((len(s) for s in states), default=0)
    return SignalLayout(tls_id, program_id, groups, tuple(phases), link_count)

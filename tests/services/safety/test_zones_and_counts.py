"""Zones, the counting line, the tracker and the incident rules, on points whose answers are
known exactly."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pytest

from cityos.services.safety.counting import FrameCounts, IntervalCounter, LineCounter
from cityos.services.safety.errors import ConfigError
from cityos.services.safety.incidents import IncidentRules
from cityos.services.safety.tracker import CentroidTracker, Track
from cityos.services.safety.zones import load_zones, parse_line, zone_from

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def test_a_line_counts_in_to_its_right_and_out_back() -> None:
    line = parse_line("0,50,100,50")  # drawn left to right: walking down the picture is in
    assert line.side((50, 80)) > 0 and line.side((50, 20)) < 0
    counter = LineCounter(line, margin=3)
    down = Track(1, (50, 30), 0, 0)
    up = Track(2, (20, 70), 0, 0)
    for step in range(9):
        down.point = (50, 30 + 5 * step)
        up.point = (20, 70 - 5 * step)
        counter.update([down, up])
    assert (counter.total_in, counter.total_out) == (1, 1)


def test_jitter_on_the_line_is_not_counted_and_crossing_beyond_its_ends_is_not() -> None:
    counter = LineCounter(parse_line("0,50,100,50"), margin=4)
    track = Track(1, (50, 40), 0, 0)
    for y in (40, 48, 52, 49, 51, 47, 53, 40):  # never 4 px past the line: no crossing
        track.point = (50, y)
        counter.update([track])
    assert (counter.total_in, counter.total_out) == (0, 0)
    outside = Track(2, (150, 20), 0, 0)  # passes the line's extension, not the segment
    for y in (20, 40, 60, 80):
        outside.point = (150, y)
        counter.update([outside])
    assert (counter.total_in, counter.total_out) == (0, 0)


def test_the_tracker_keeps_close_points_and_forgets_lost_ones() -> None:
    tracker = CentroidTracker(max_distance=20, max_missed=2)
    first = tracker.update([(10, 10), (100, 100)], 0.0)
    ids = {t.point: t.id for t in first}
    moved = tracker.update([(14, 12), (104, 103)], 0.04)
    assert {t.id for t in moved} == set(ids.values())
    assert len(tracker.update([(300, 300)], 0.08)) == 1  # far away: a new track
    for k in range(3):
        tracker.update([(300, 300)], 0.12 + k * 0.04)
    assert [t.point for t in tracker.tracks] == [(300.0, 300.0)]  # the lost two are gone


def test_zones_file_errors_name_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "zones.json"
    cases = {
        "not json": "is not JSON",
        json.dumps({"zones": []}): "one zone or more",
        json.dumps({"zones": [{"polygon": SQUARE}]}): "needs a name",
        json.dumps({"zones": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}): "three",
        json.dumps({"zones": [{"name": "a", "polygon": SQUARE, "capacity": -1}]}): "capacity",
        json.dumps({"zones": [{"name": "a", "polygon": SQUARE,
                               "closed": {"from": "25:00", "to": "6:00"}}]}): "HH:MM",
        json.dumps({"zones": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]}):
            "repeat",
        json.dumps({"zones": [{"name": "bow", "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}]}):
            "crosses itself",
    }  # fmt: skip
    for text, words in cases.items():
        path.write_text(text)
        with pytest.raises(ConfigError, match=words):
            load_zones(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_zones(tmp_path / "missing.json")
    for bad in ("1,2,3", "a,b,c,d", "5,5,5,5", "1,2,3,nan"):
        with pytest.raises(ConfigError, match="--line"):
            parse_line(bad)


def test_closed_hours_may_wrap_midnight() -> None:
    zone = zone_from(
        {"name": "z", "polygon": SQUARE, "closed": {"from": "22:00", "to": "06:00"}}, "z"
    )
    assert zone.is_closed(time(23, 0)) and zone.is_closed(time(5, 59))
    assert not zone.is_closed(time(6, 0)) and not zone.is_closed(time(12, 0))
    assert zone.count([(50, 50), (150, 50), (99, 99)]) == 2


def _frame(t: float, n: int) -> FrameCounts:
    return FrameCounts(t, n, {"z": n})


def test_crowding_alerts_once_per_episode_after_it_holds() -> None:
    zone = zone_from({"name": "z", "polygon": SQUARE, "capacity": 3}, "z")
    rules = IncidentRules([zone], lambda t: time(12, 0), hold_s=1.0)
    raised = []
    for k, n in enumerate([4, 4, 4, 5, 6, 2, 5, 5, 5, 2, 2, 2, 4, 4, 5]):
        raised += [(k, i.kind, i.severity) for i in rules.update(_frame(k * 0.5, n), [])]
    # over capacity from 0.0 s, held 1 s at 1.0 s; back to normal only 0.5 s at 2.5 s (no
    # re-arm); normal 1 s from 4.5 s, over again from 6.0 s, held at 7.0 s
    assert raised == [(2, "crowding", "medium"), (14, "crowding", "high")]


def test_after_hours_and_loitering() -> None:
    zone = zone_from(
        {"name": "z", "polygon": SQUARE, "closed": {"from": "22:00", "to": "06:00"}, "loiter_s": 3},
        "z",
    )  # fmt: skip
    night = IncidentRules([zone], lambda t: time(23, 0), hold_s=0)
    day = IncidentRules([zone], lambda t: time(12, 0), hold_s=0)
    inside = Track(1, (50, 50), 0, 0)
    assert [i.kind for i in night.update(_frame(0, 1), [inside])] == ["restrictedAreaAfterHours"]
    assert day.update(_frame(0, 1), [Track(1, (50, 50), 0, 0)]) == []
    walker = Track(2, (50, 50), 0, 0)
    found = [(k, i.kind) for k in range(6) for i in day.update(_frame(k, 1), [walker])]
    assert found == [(3, "loitering")]  # once, at 3 s


def test_intervals_cut_on_video_time() -> None:
    counter = IntervalCounter(1.0)
    done = [counter.add(FrameCounts(k * 0.25, k % 3, {"z": k % 2}, crossed_in=1)) for k in range(9)]
    finished = [d for d in done if d is not None]
    assert [(d.start, d.frames, d.crossed_in) for d in finished] == [(0.0, 4, 4), (1.0, 4, 4)]
    assert finished[0].view_peak == 2 and finished[0].zone_occupied == {"z": 2}
    last = counter.flush()
    assert last is not None and (last.start, last.frames) == (2.0, 1)

"""GTFS-realtime: feeds parsed back by the official bindings equal what was meant; bus delays."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from google.transit import gtfs_realtime_pb2 as rt

from cityos.services.traffic.gtfs import StopTime
from cityos.services.traffic.gtfs_rt import (
    BusPosition,
    GtfsRealtimeError,
    StopPrediction,
    distance_along_shape,
    estimate_delay,
    feed_as_dict,
    parse_feed,
    predict_trips,
    read_trip_updates,
    read_vehicle_positions,
    serialise,
    trip_progress,
    trip_updates_feed,
    vehicle_positions_feed,
)

NOW = 1_767_225_600 + 25_500  # 2026-01-01 07:05:00 on a UTC service day
DAY_START = 1_767_225_600

# L1_0_000: four stops, 400 m apart, 60 s running time, 20 s dwell at the middle stops
SCHEDULE = (
    StopTime("S1", 1, 25_200, 25_200, 30.0),
    StopTime("S2", 2, 25_260, 25_280, 430.0),
    StopTime("S3", 3, 25_340, 25_360, 830.0),
    StopTime("S4", 4, 25_420, 25_420, 1230.0),
)
SCHEDULES = {"L1_0_000": SCHEDULE, "L2_1_003": SCHEDULE[1:]}


def bus(vehicle: str, trip: str | None, **changes: object) -> BusPosition:
    fields: dict[str, object] = {
        "vehicle_id": vehicle,
        "trip_id": trip,
        "route_id": trip.split("_")[0] if trip else None,
        "lon": 104.9213,
        "lat": 11.5681,
        "bearing": 92.5,
        "speed_mps": 8.25,
        "timestamp": NOW,
        "delay_s": 45.0,
        "next_stop_sequence": 3,
        "direction_id": 0,
        "start_date": "20260101",
    }
    fields.update(changes)
    return BusPosition(**fields)  # type: ignore[arg-type]


def _float32(value: float) -> float:
    """What a protobuf float field keeps of a double."""
    import struct

    return struct.unpack("f", struct.pack("f", value))[0]


# --------------------------------------------------------------------------- VehiclePositions


def test_vehicle_positions_round_trip() -> None:
    meant = [
        bus("bus-7", "L1_0_000"),
        bus("bus-9", "L2_1_003", lon=104.93, lat=11.57, bearing=270.0, stopped=True),
        bus("bus-11", None, bearing=None, speed_mps=None, next_stop_sequence=None),
    ]
    data = serialise(vehicle_positions_feed(meant, timestamp=NOW + 1))
    feed = parse_feed(data)
    assert feed.header.gtfs_realtime_version == "2.0"
    assert feed.header.incrementality == rt.FeedHeader.FULL_DATASET
    assert feed.header.timestamp == NOW + 1
    by_id = {p.vehicle_id: p for p in read_vehicle_positions(data)}
    assert set(by_id) == {"bus-7", "bus-9", "bus-11"}
    for p in meant:
        back = by_id[p.vehicle_id]
        expected = dataclasses.replace(
            p,
            delay_s=None,  # a VehiclePosition carries no delay: TripUpdates do
            lon=_float32(p.lon),
            lat=_float32(p.lat),
            bearing=None if p.bearing is None else _float32(p.bearing),
            speed_mps=None if p.speed_mps is None else _float32(p.speed_mps),
            direction_id=p.direction_id if p.trip_id else None,
            start_date=p.start_date if p.trip_id else None,
        )
        assert back == expected
    vehicle = {e.id: e.vehicle for e in feed.entity}
    assert vehicle["bus-9"].current_status == rt.VehiclePosition.STOPPED_AT
    assert vehicle["bus-7"].current_status == rt.VehiclePosition.IN_TRANSIT_TO
    assert not vehicle["bus-11"].HasField("trip")  # a bus with no trip is still on the map


def test_newest_report_per_bus_and_bad_reports_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reports = [
        bus("bus-7", "L1_0_000", timestamp=NOW - 10, lon=104.90),
        bus("bus-7", "L1_0_000", timestamp=NOW, lon=104.95),
        bus("bus-8", "L1_0_000", lat=123.0),
        bus("", "L1_0_000"),
    ]
    with caplog.at_level(logging.WARNING):
        back = read_vehicle_positions(serialise(vehicle_positions_feed(reports)))
    assert [(p.vehicle_id, p.lon) for p in back] == [("bus-7", pytest.approx(104.95))]
    assert "latitude 123.0 out of range" in caplog.text


# --------------------------------------------------------------------------- TripUpdates


def test_trip_updates_round_trip() -> None:
    reports = [
        bus("bus-7", "L1_0_000"),
        bus("bus-9", "L2_1_003", delay_s=-20.4, next_stop_sequence=None),
    ]
    predictions = predict_trips(reports, SCHEDULES, service_day_start=DAY_START)
    data = serialise(trip_updates_feed(predictions, timestamp=NOW))
    header = parse_feed(data).header
    assert (header.gtfs_realtime_version, header.incrementality) == (
        "2.0",
        rt.FeedHeader.FULL_DATASET,
    )
    back = read_trip_updates(data)
    assert back == predictions

    late, early = sorted(back, key=lambda p: p.trip_id)
    assert (late.trip_id, late.route_id, late.vehicle_id, late.delay_s) == (
        "L1_0_000",
        "L1",
        "bus-7",
        45,
    )
    assert late.stops == (  # from the next stop on, each 45 s behind the timetable
        StopPrediction(3, "S3", 45, DAY_START + 25_340 + 45),
        StopPrediction(4, "S4", 45, DAY_START + 25_420 + 45),
    )
    # no next stop reported: the stops not yet due at 07:05:00 (25 500 s) with the delay
    assert early.delay_s == -20
    assert early.stops == ()  # S4 at 07:03:40 - 20 s is past
    assert late.start_date == "20260101"


def test_trip_updates_limit_and_no_day_start() -> None:
    (pred,) = predict_trips(
        [bus("bus-7", "L1_0_000", next_stop_sequence=2)], SCHEDULES, max_stops=2
    )
    assert [(s.stop_id, s.arrival_delay_s, s.arrival_time) for s in pred.stops] == [
        ("S2", 45, None),
        ("S3", 45, None),
    ]
    update = parse_feed(serialise(trip_updates_feed([pred]))).entity[0].trip_update
    assert not update.stop_time_update[0].arrival.HasField("time")
    assert update.stop_time_update[0].arrival.delay == 45


def test_buses_without_a_usable_trip_get_no_trip_update(caplog: pytest.LogCaptureFixture) -> None:
    reports = [
        bus("bus-1", None),
        bus("bus-2", "L9_0_000"),
        bus("bus-3", "L1_0_000", delay_s=None),
        bus("bus-4", "L1_0_000"),
    ]
    with caplog.at_level(logging.WARNING):
        predictions = predict_trips(reports, SCHEDULES)
    assert [p.vehicle_id for p in predictions] == ["bus-4"]
    assert "bus bus-1: reports no trip" in caplog.text
    assert "trip 'L9_0_000' is not in the timetable" in caplog.text
    # all four still appear in VehiclePositions
    assert len(read_vehicle_positions(serialise(vehicle_positions_feed(reports)))) == 4


def test_garbage_is_not_a_feed() -> None:
    with pytest.raises(GtfsRealtimeError, match="not a GTFS-realtime FeedMessage"):
        parse_feed(b"\xff\xfe not protobuf")
    with pytest.raises(GtfsRealtimeError, match="header has no version"):
        parse_feed(b"")


def test_json_view_uses_spec_field_names() -> None:
    as_dict = feed_as_dict(vehicle_positions_feed([bus("bus-7", "L1_0_000")], timestamp=NOW))
    assert as_dict["header"]["gtfs_realtime_version"] == "2.0"
    assert as_dict["entity"][0]["vehicle"]["trip"]["trip_id"] == "L1_0_000"


# --------------------------------------------------------------------------- delay


@pytest.mark.parametrize(
    ("now", "distance", "expected"),
    [
        (25_260, 430.0, 0.0),  # at S2 on the minute it is due
        (25_275, 432.0, 0.0),  # still dwelling, before its departure time
        (25_300, 430.0, 20.0),  # still at S2, 20 s after it should have left
        (25_250, 428.0, -10.0),  # reached S2 10 s early
        (25_310, 630.0, 0.0),  # half way S2 -> S3, half way through the 60 s run
        (25_340, 630.0, 30.0),  # half way, but S3 is already due
        (25_190, 30.0 - 200.0, 20.0),  # 200 m before S1 at the first leg's pace: due 25 170
        (25_460, 1230.0 + 200.0, 10.0),  # past the last stop: due there at 25 450
    ],
)
def test_delay_from_progress(now: float, distance: float, expected: float) -> None:
    assert estimate_delay(SCHEDULE, now, distance_m=distance) == pytest.approx(expected)


def test_delay_at_a_stop_by_sequence() -> None:
    assert estimate_delay(SCHEDULE, 25_290, at_stop_sequence=2) == pytest.approx(10.0)
    assert estimate_delay(SCHEDULE, 25_255, at_stop_sequence=2) == pytest.approx(-5.0)
    with pytest.raises(GtfsRealtimeError, match="no stop with sequence 9"):
        estimate_delay(SCHEDULE, 25_255, at_stop_sequence=9)
    with pytest.raises(GtfsRealtimeError, match="needs distance_m or at_stop_sequence"):
        estimate_delay(SCHEDULE, 25_255)
    with pytest.raises(GtfsRealtimeError, match="no schedule"):
        estimate_delay((), 25_255, distance_m=10.0)


def test_trip_progress_for_a_bus_report() -> None:
    standing = trip_progress(SCHEDULE, 25_300, 431.0, speed_mps=0.0)
    assert (standing.delay_s, standing.next_stop_sequence, standing.stopped) == (20.0, 2, True)
    leaving = trip_progress(SCHEDULE, 25_300, 436.0, speed_mps=3.0)
    assert (leaving.next_stop_sequence, leaving.stopped) == (3, False)
    arriving = trip_progress(SCHEDULE, 25_330, 825.0, speed_mps=2.0)
    assert (arriving.next_stop_sequence, arriving.stopped) == (3, False)
    done = trip_progress(SCHEDULE, 25_500, 1300.0, speed_mps=5.0)
    assert (done.next_stop_sequence, done.stopped) == (None, False)
    assert done.delay_s > 0


def test_distance_along_a_shape_from_a_gps_fix() -> None:
    # a 1 km line due east from the Phnom Penh origin, then 500 m north
    k = 111_320.0 * 0.97970  # metres per degree of longitude at 11.56 N
    shape = (
        (104.92, 11.56, 0.0),
        (104.92 + 1000 / k, 11.56, 1000.0),
        (104.92 + 1000 / k, 11.56 + 500 / 111_320, 1500.0),
    )
    assert distance_along_shape(shape, 104.92 + 400 / k, 11.56 + 5 / 111_320) == pytest.approx(
        400.0, abs=0.5
    )
    assert distance_along_shape(shape, 104.92 + 1003 / k, 11.56 + 250 / 111_320) == pytest.approx(
        1250.0, abs=0.5
    )
    assert distance_along_shape(shape, 104.91, 11.56) == 0.0  # behind the start clamps
    with pytest.raises(GtfsRealtimeError):
        distance_along_shape(shape[:1], 104.92, 11.56)

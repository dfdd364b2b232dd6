"""A camera end to end into a real hub (SQLite): exact counts on synthetic scenes, the
camera as a device of the IoT agent, alerts whose stored snapshots show no face, and the
two ways a source fails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cityos.devices.agent import Agent
from cityos.hub.client import HubClient
from cityos.services.safety.errors import UnreadableSourceError
from cityos.services.safety.masking import MaskPolicy
from cityos.services.safety.model import Camera
from cityos.services.safety.opencv import cv2
from cityos.services.safety.pipeline import PipelineConfig, run_camera
from cityos.services.safety.service import SafetySettings, health
from cityos.services.safety.snapshot import decode_data_uri
from cityos.services.safety.zones import parse_line, zone_from

from .conftest import FakeCapture, Walker, face_image, faces_in, fake_factory, scene

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CAMERA = Camera("cam-1", "Market entrance", (104.9210, 11.5696))
WALKERS = [
    Walker(100, 60, 0, 4, start=5),  # down across the line: in; always in zone "left"
    Walker(300, 80, 0, 4, start=5),  # down: in
    Walker(500, 300, 0, -4, start=5),  # up: out
    Walker(380, 330, 2, 0, start=5),  # along the bottom: never crosses
]
LEFT = {"name": "left", "polygon": [[0, 0], [200, 0], [200, 360], [0, 360]]}
FAST = PipelineConfig(interval_s=1.0, hold_s=0.2, reconnect_wait_s=0.0)


def _run(client, frames, **kw):
    agent = Agent(client.hub)
    kw.setdefault("config", FAST)
    return run_camera("synthetic.avi", CAMERA, client=client, agent=agent, origin=START,
                      capture=fake_factory(FakeCapture(frames)), **kw)  # fmt: skip


def _fake_source(path: Path) -> Path:
    path.write_bytes(b"")  # open_source checks a file exists; the fake capture plays it
    return path


def test_counts_crossings_and_zones_exactly(client: HubClient, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    frames = scene(WALKERS, 60)
    seen: list[int] = []
    result = _run(
        client,
        frames,
        zones=[zone_from(LEFT, "left")],
        line=parse_line("0,180,640,180"),
        on_frame=lambda f, boxes, counts: seen.append(counts.zones["left"]),
    )
    assert (result.crossed_in, result.crossed_out) == (2, 1)
    assert result.people_peak == 4 and result.zones_peak == {"left": 1}
    assert seen[:5] == [0] * 5 and set(seen[6:]) == {1}
    assert result.state == "ok" and result.frames == 60 and result.intervals == 3
    flows = client.query(type="CrowdFlowObserved", q='sensor=="cam-1"', fmt="keyValues",
                         limit=1000)  # fmt: skip
    crossings = [f for f in flows if "direction" in f]
    assert len(crossings) == 6  # in and out, for each of the 3 intervals
    assert sum(f["peopleCount"] for f in crossings if f["direction"] == "inbound") == 2
    assert sum(f["peopleCount"] for f in crossings if f["direction"] == "outbound") == 1
    first = min(crossings, key=lambda f: f["dateObservedFrom"])
    assert first["dateObservedFrom"] == "2026-03-02T09:00:00.000000Z"  # text, as flows asks
    assert first["refDevice"] == CAMERA.device == "urn:ngsi-ld:Device:cam-1"
    assert first["location"]["coordinates"] == [104.921, 11.5696]
    assert first["id"] == "urn:ngsi-ld:CrowdFlowObserved:cam-1:inbound:20260302T090000"
    zone = [f for f in flows if ":zone:left:" in f["id"]]
    assert [z["peopleCount"] for z in sorted(zone, key=lambda z: z["id"])] == [1, 1, 1]
    assert min(z["occupancy"] for z in zone) > 0.75  # someone there from frame 5 on
    view = [f for f in flows if ":view:" in f["id"]]
    assert max(v["peopleCount"] for v in view) == 4


def test_crossings_feed_the_flows_zone_of_an_entrance(client: HubClient, tmp_path,
                                                      monkeypatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    gate = Camera("gate-cam", location=None, flow_zone="central-market")
    run_camera("synthetic.avi", gate, client=client, origin=START, config=FAST,
               line=parse_line("0,180,640,180"),
               capture=fake_factory(FakeCapture(scene(WALKERS, 40))))  # fmt: skip
    counts = client.query(type="CrowdFlowObserved", q='zoneCode=="central-market"',
                          fmt="keyValues")  # fmt: skip
    assert {c["direction"] for c in counts} == {"inbound", "outbound"}
    assert all(c["refFlowZone"] == "urn:ngsi-ld:FlowZone:central-market" for c in counts)
    assert sum(c["peopleCount"] for c in counts if c["direction"] == "inbound") == 2


def test_the_camera_is_a_device_of_the_iot_agent(client: HubClient, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    _run(client, scene(WALKERS, 40))
    agent = Agent(client.hub)
    assert agent.doc(agent.DEVICE, "", "cam-1")["entity_name"] == CAMERA.device
    device = client.get(CAMERA.device, fmt="keyValues")
    assert device["type"] == "Device" and device["deviceCategory"] == ["camera"]
    assert device["deviceState"] == "ok" and device["framesProcessed"] == 40
    assert device["messagesAccepted"] >= 2 and device["messagesRejected"] == 0
    assert device["dateLastFrame"].startswith("2026-03-02T09:00:01")
    assert device["location"]["coordinates"] == [104.921, 11.5696]
    assert device["frameRate"] > 0
    ctx = SimpleNamespace(client=client, settings=SafetySettings())
    assert health(ctx) == {"status": "ok", "cameras": 1, "disconnected": []}


def test_without_an_agent_the_same_device_entity_is_written(client: HubClient, tmp_path,
                                                             monkeypatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    run_camera("synthetic.avi", CAMERA, client=client, origin=START, config=FAST,
               capture=fake_factory(FakeCapture(scene(WALKERS, 30))))  # fmt: skip
    device = client.get(CAMERA.device, fmt="keyValues")
    assert device["deviceState"] == "ok" and device["framesProcessed"] == 30
    assert device["deviceCategory"] == ["camera"]


@pytest.mark.slow
def test_an_alert_carries_a_masked_snapshot_with_no_face(client: HubClient, tmp_path,
                                                         monkeypatch) -> None:  # fmt: skip
    """A person walking (a photograph of a face on a body) and a poster of a face on the
    wall: the stored snapshot shows neither face to any of OpenCV's face cascades."""
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    walker = face_image(130)
    poster = face_image(170)
    frames = []
    for n in range(20):
        image = np.full((360, 480, 3), 60, np.uint8)
        image[10 : 10 + poster.shape[0], 330 : 330 + poster.shape[1]] = poster
        if n >= 3:  # the walker enters after the background is learnt
            x = 20 + 4 * (n - 3)
            h, w = walker.shape[:2]
            image[150 : 150 + h, x : x + w] = walker
            image[150 + h : 150 + h + 60, x + 20 : x + w - 20] = (30, 30, 120)  # a body
        frames.append(image)
    assert faces_in(frames[-1]) >= 2
    room = {"name": "room", "polygon": [[0, 0], [480, 0], [480, 360], [0, 360]], "capacity": 0}
    config = PipelineConfig(interval_s=5.0, hold_s=0.1, reconnect_wait_s=0.0)
    result = _run(client, frames, zones=[zone_from(room, "room")], config=config)
    [alert_id] = result.alerts
    alert = client.get(alert_id, fmt="keyValues")
    assert alert["category"] == "security" and alert["subCategory"] == "crowding"
    assert alert["alertSource"] == CAMERA.device and alert["severity"] in ("medium", "high")
    assert alert["dateIssued"]["@value"].startswith("2026-03-02T09:00:00")
    stored = decode_data_uri(alert["snapshot"])
    assert stored.shape[:2] == (360, 480)
    assert faces_in(stored) == 0
    assert len(alert["snapshot"]) < 32_768 * 4 / 3 + 100


def test_bodies_can_be_masked_whole(client: HubClient, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    big = [Walker(240, 100, 0, 3, start=3, w=60, h=120)]
    room = {"name": "room", "polygon": [[0, 0], [640, 0], [640, 360], [0, 360]], "capacity": 0}
    config = PipelineConfig(hold_s=0.0, reconnect_wait_s=0.0,
                            mask=MaskPolicy(bodies=True, detect_faces=False))  # fmt: skip
    result = _run(client, scene(big, 12), zones=[zone_from(room, "room")], config=config)
    stored = decode_data_uri(client.get(result.alerts[0], fmt="keyValues")["snapshot"])
    body = stored[40:100, 215:265].astype(float)  # inside the white body, away from edges
    assert body.std() < 25  # pixelated flat (JPEG noise only) ...
    assert 0 < body.mean() < 250  # ... and blended with the black around it: not the body


def test_an_unreadable_video_fails_and_writes_nothing(client: HubClient, tmp_path) -> None:
    text = tmp_path / "notes.avi"
    text.write_text("this is not a video\n")
    cases = {
        str(tmp_path / "missing.mp4"): "no such file",
        str(text): "not a video",
        str(tmp_path): "directory",
    }
    for source, words in cases.items():
        with pytest.raises(UnreadableSourceError, match=words):
            run_camera(source, CAMERA, client=client, agent=Agent(client.hub))
    with pytest.raises(UnreadableSourceError, match="did not answer"):
        run_camera("rtsp://10.0.0.9/cam", CAMERA, client=client,
                   capture=fake_factory(FakeCapture([], opened=False)))  # fmt: skip
    assert client.count() == 0
    assert Agent(client.hub).doc(Agent.DEVICE, "", "cam-1") is None


def test_a_stream_that_drops_leaves_the_camera_disconnected_with_an_alert(
    client: HubClient,
) -> None:
    frames = scene(WALKERS, 30)
    first, second = FakeCapture(frames[:20]), FakeCapture(frames[20:])
    # plays 20 frames, drops; reconnects once (10 more), drops; the next 3 reopens fail
    result = run_camera("rtsp://10.0.0.9/cam", CAMERA, client=client, agent=Agent(client.hub),
                        origin=START, config=FAST, capture=fake_factory(first, second))  # fmt: skip
    assert result.state == "disconnected" and result.frames == 30
    assert "stopped sending frames after 30" in result.error
    device = client.get(CAMERA.device, fmt="keyValues")
    assert device["deviceState"] == "disconnected"
    assert "stopped sending frames" in device["streamError"]
    [alert] = client.query(type="Alert", q='subCategory=="cameraDisconnected"', fmt="keyValues")
    assert alert["alertSource"] == CAMERA.device and "snapshot" not in alert
    ctx = SimpleNamespace(client=client, settings=SafetySettings())
    assert health(ctx) == {"status": "degraded", "cameras": 1, "disconnected": [CAMERA.device]}


def test_a_truncated_file_counts_as_dropped(client: HubClient, tmp_path) -> None:
    whole = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 360))
    for image in scene(WALKERS, 50):
        writer.write(image)
    writer.release()
    ok = run_camera(str(whole), CAMERA, config=FAST)
    assert ok.state == "ok" and ok.frames == 50
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = run_camera(str(cut), CAMERA, client=client, agent=Agent(client.hub),
                        origin=START, config=FAST)  # fmt: skip
    assert result.state == "disconnected" and 0 < result.frames < 50
    assert "truncated" in result.error
    assert client.get(CAMERA.device, fmt="keyValues")["deviceState"] == "disconnected"
    assert client.count(type="Alert") == 1


def test_max_frames_stops_early_and_is_no_drop(client: HubClient) -> None:
    result = run_camera("rtsp://10.0.0.9/cam", CAMERA, client=client, origin=START,
                        config=FAST, max_frames=10,
                        capture=fake_factory(FakeCapture(scene(WALKERS, 30))))  # fmt: skip
    assert result.state == "ok" and result.frames == 10
    assert client.count(type="Alert") == 0


def test_loitering_and_after_hours_alerts(client: HubClient, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _fake_source(tmp_path / "synthetic.avi")
    pacing = [Walker(80, 150, 1, 0, start=3), Walker(160, 300, -1, 0, start=3)]
    yard = {"name": "yard", "polygon": [[0, 0], [320, 0], [320, 360], [0, 360]],
            "loiter_s": 1.0, "closed": {"from": "22:00", "to": "06:00"}}  # fmt: skip
    config = PipelineConfig(hold_s=0.2, reconnect_wait_s=0.0, mask=MaskPolicy(detect_faces=False),
                            snapshot_hog=False)  # fmt: skip
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    result = run_camera("synthetic.avi", CAMERA, client=client, origin=late, config=config,
                        zones=[zone_from(yard, "yard")],
                        capture=fake_factory(FakeCapture(scene(pacing, 50))))  # fmt: skip
    kinds = sorted(i["kind"] for i in result.incidents)
    assert kinds == ["loitering", "loitering", "restrictedAreaAfterHours"]
    assert len(set(result.alerts)) == 3
    night = client.query(type="Alert", q='subCategory=="restrictedAreaAfterHours"', fmt="keyValues")
    assert night[0]["severity"] == "high" and "23:30" in night[0]["description"]
    assert night[0]["zone"] == "yard" and night[0]["snapshot"].startswith("data:image/jpeg")

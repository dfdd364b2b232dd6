"""Cameras benchmark: how well each people detector counts, how many line crossings the
pipeline finds, and how many frames per second one camera stream costs on one core.

Input: the test clip ``vtest.avi`` (1280x720, 341 frames at 25 frames/s, people crossing a
hall seen from above), read from ``../shared/data`` (never copied into the project), and
the hand labels of ``tests/services/safety/labels.json``: people counted by eye on 10
frames, those whose feet lie in the band 60 <= y < 700 (the same band is a zone here, so
the pipeline's own zone counting is what is measured).

For each detector (``motion-knn``, ``motion-mog2``, ``hog``, ``combined``) it runs the
whole pipeline without a hub (detection, tracking, zone and line counting) and reports:

* the count error on each labelled frame, its mean absolute error (MAE), its mean (bias)
  and the largest error;
* line crossings of ``--line`` (default the horizontal line y=480, in = walking down the
  picture) against the crossings counted by hand on a slit-scan of that row (two rows,
  y=466 and y=494, stacked over time: each person crossing leaves a figure whose colour
  fringes say which way they went);
* frames per second per stream, per wall second and per CPU second (the machine may be
  shared), decoding included, with the process pinned to one CPU and OpenCV on one thread.

``hog`` is stateless and slow (about a second a frame), so it runs on the labelled frames
only (no crossings). The cost of one masked snapshot (face cascades, pixelation, JPEG) is
timed too. Writes ``benchmarks/results/cameras.json``. Usage::

    .venv/bin/python benchmarks/cameras.py [--clip PATH] [--detectors motion-knn,hog] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cityos.services.safety.masking import MaskPolicy, mask_frame  # noqa: E402
from cityos.services.safety.model import Camera  # noqa: E402
from cityos.services.safety.opencv import cv2, opencv_version  # noqa: E402
from cityos.services.safety.people import DETECTORS, HogDetector, make_detector  # noqa: E402
from cityos.services.safety.pipeline import (  # noqa: E402
    PipelineConfig,
    people_for_snapshot,
    run_camera,
)
from cityos.services.safety.snapshot import encode_jpeg  # noqa: E402
from cityos.services.safety.zones import parse_line, zone_from  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "vtest.avi"
LABELS = ROOT / "tests" / "services" / "safety" / "labels.json"
# crossings of y=480 counted by hand on the slit-scan (see the module doc): 14 down, 7 up;
# about 2 more or fewer either way (a walker cut by the clip's end, one in its first frames)
HAND_CROSSINGS = {"line": "0,480,1280,480", "in": 14, "out": 7, "uncertainty": 2}


def pin_one_cpu() -> int | None:
    """Run on one CPU (the first we may use) with OpenCV on one thread."""
    cv2.setNumThreads(1)
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def decode_rate(clip: Path) -> dict[str, float]:
    cap = cv2.VideoCapture(str(clip))
    wall, cpu = time.perf_counter(), time.process_time()
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"frames": frames, "fps_wall": frames / wall, "fps_cpu": frames / cpu}


def score(counts: dict[int, int], labels: dict[int, int]) -> dict[str, Any]:
    errors = {f: counts[f] - n for f, n in labels.items()}
    values = list(errors.values())
    return {
        "errors": {str(f): e for f, e in errors.items()},
        "counts": {str(f): counts[f] for f in labels},
        "mae": sum(abs(e) for e in values) / len(values),
        "bias": sum(values) / len(values),
        "max_abs": max(abs(e) for e in values),
    }


class SkipToLabels:
    """A capture that decodes every frame but hands the detector only the labelled ones
    (for the stateless, slow HOG): the other frames become a 1-pixel stand-in."""

    def __init__(self, clip: Path, keep: set[int]) -> None:
        self.cap = cv2.VideoCapture(str(clip))
        self.keep = keep
        self.n = -1

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.cap.isOpened()

    def read(self) -> tuple[bool, Any]:
        ok, image = self.cap.read()
        self.n += 1
        if ok and self.n not in self.keep:
            return True, image[:1, :1]
        return ok, image

    def get(self, prop: int) -> float:
        return self.cap.get(prop)

    def release(self) -> None:
        self.cap.release()


def run_detector(
    name: str, clip: Path, labels: dict[int, int], line: str, seed: int = 0
) -> dict[str, Any]:
    polygon = json.loads(LABELS.read_text())["zone"]
    band = zone_from({"name": "labels", "polygon": polygon}, "labels")
    counts: dict[int, int] = {}
    timed = {"wall": 0.0, "cpu": 0.0, "frames": 0}
    detector = make_detector(name, seed=seed)
    stateless = name == "hog"

    if stateless:
        inner = detector

        class OnLabels:
            name = "hog"

            def detect(self, image: Any) -> list[Any]:
                if image.shape[0] < 2:
                    return []
                wall, cpu = time.perf_counter(), time.process_time()
                found = inner.detect(image)
                timed["wall"] += time.perf_counter() - wall
                timed["cpu"] += time.process_time() - cpu
                timed["frames"] += 1
                return found

        detector = OnLabels()  # type: ignore[assignment]

    def on_frame(frame: Any, boxes: Any, frame_counts: Any) -> None:
        if frame.index in labels:
            counts[frame.index] = frame_counts.zones["labels"]

    capture = (lambda s: SkipToLabels(Path(s), set(labels))) if stateless else None
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_camera(
        str(clip),
        Camera("vtest"),
        zones=[band],
        line=None if stateless else parse_line(line),
        config=PipelineConfig(detector=name),
        detector=detector,
        on_frame=on_frame,
        **({"capture": capture} if capture else {}),
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = {"detector": name, "seed": seed, **score(counts, labels), "frames": result.frames}
    if stateless:
        out["fps_wall"] = timed["frames"] / timed["wall"]
        out["fps_cpu"] = timed["frames"] / timed["cpu"]
        out["note"] = "detection only, on the labelled frames (HOG keeps no state)"
    else:
        out["fps_wall"] = result.frames / wall
        out["fps_cpu"] = result.frames / cpu
        out["crossed_in"] = result.crossed_in
        out["crossed_out"] = result.crossed_out
    return out


def snapshot_cost(clip: Path, frame_index: int = 140) -> dict[str, Any]:
    """One masked snapshot of a labelled frame, as an alert makes it: a HOG pass for still
    people, the face cascades, head regions, JPEG."""
    cap = cv2.VideoCapture(str(clip))
    detector = make_detector("motion-knn")
    boxes: list[Any] = []
    image = None
    for _ in range(frame_index + 1):
        _ok, image = cap.read()
        boxes = detector.detect(image)
    cap.release()
    wall, cpu = time.perf_counter(), time.process_time()
    people = people_for_snapshot(image, boxes, HogDetector())
    masked = mask_frame(image, people, MaskPolicy())
    data = encode_jpeg(masked)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    kinds: dict[str, int] = {}
    for r in masked.regions:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return {"frame": frame_index, "seconds_wall": wall, "seconds_cpu": cpu,
            "jpeg_bytes": len(data), "regions": kinds, "moving_people": len(boxes),
            "still_people_added": len(people) - len(boxes)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--line", default=HAND_CROSSINGS["line"])
    parser.add_argument(
        "--seeds", type=int, default=5, help="Runs of each motion detector (KNN samples at random)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.clip.exists():
        sys.exit(f"error: the clip is not at {args.clip}")
    doc = json.loads(LABELS.read_text())
    labels = {int(f["frame"]): int(f["count"]) for f in doc["frames"]}
    cpu = pin_one_cpu()
    results: dict[str, Any] = {
        "clip": str(args.clip.name),
        "labels": {"frames": len(labels), "rule": doc["rule"]},
        "machine": {
            "cpus": os.cpu_count(),
            "pinned_cpu": cpu,
            "load_before": os.getloadavg(),
            "python": platform.python_version(),
            "opencv": opencv_version(),
        },
        "hand_crossings": HAND_CROSSINGS,
        "decode": decode_rate(args.clip),
        "detectors": {},
    }
    print(f"decode only: {results['decode']['fps_wall']:.0f} frames/s (wall)")
    for name in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        t0 = time.perf_counter()
        seeds = [0] if name == "hog" else list(range(args.seeds))
        runs = [run_detector(name, args.clip, labels, args.line, seed) for seed in seeds]
        out = dict(runs[0])  # per-frame details of seed 0; the spread over the seeds below
        if len(runs) > 1:
            maes = [r["mae"] for r in runs]
            out["mae_over_seeds"] = {"mean": sum(maes) / len(maes), "min": min(maes),
                                     "max": max(maes), "seeds": len(maes)}  # fmt: skip
            out["crossings_over_seeds"] = [[r["crossed_in"], r["crossed_out"]] for r in runs]
            out["fps_wall"] = sum(r["fps_wall"] for r in runs) / len(runs)
            out["fps_cpu"] = sum(r["fps_cpu"] for r in runs) / len(runs)
        results["detectors"][name] = out
        crossings = (
            f", crossings in/out {out['crossed_in']}/{out['crossed_out']}"
            if "crossed_in" in out
            else ""
        )
        spread = out.get("mae_over_seeds")
        seeds_text = (
            f" [MAE over {spread['seeds']} seeds {spread['min']:.1f}-{spread['max']:.1f}]"
            if spread
            else ""
        )
        print(
            f"{name:12s} MAE {out['mae']:.1f}{seeds_text} (bias {out['bias']:+.1f}, "
            f"max {out['max_abs']}), "
            f"{out['fps_wall']:.1f} fps wall, {out['fps_cpu']:.1f} fps CPU{crossings} "
            f"[{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    results["snapshot"] = snapshot_cost(args.clip)
    print(
        f"one masked snapshot: {results['snapshot']['seconds_wall']:.2f} s wall, "
        f"{results['snapshot']['jpeg_bytes']} bytes"
    )
    results["machine"]["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cameras.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

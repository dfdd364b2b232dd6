"""A city day: ``cityos demo`` run once without serving, and its table of the day's
indicators against the same day without CityOS (the README's "A city day" section).

Runs ``cityos demo --no-serve --json`` into a fresh SQLite database in a temporary folder
(nothing left behind), at the demo's default speed unless told otherwise, and writes
``results/city-day.json``: the table's rows (with both runs' values and the notes that say
what is assumed), the command, its wall time, the day's own wall time and the machine.
``--markdown`` prints the recorded table as Markdown instead of running; ``--readme`` puts
it into README.md (between ``<!-- city-day:start -->`` and ``<!-- city-day:end -->``).
Usage::

    .venv/bin/python benchmarks/city_day.py [--speed 600] [--minutes 60]
    .venv/bin/python benchmarks/city_day.py --markdown | --readme
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cityos.cityday.summary import markdown  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "city-day.json"
README = ROOT / "README.md"
START, END = "<!-- city-day:start -->", "<!-- city-day:end -->"


def readme_block(result: dict[str, Any]) -> str:
    """The README's table: the recorded rows and where they came from."""
    return (
        f"{START}\n{markdown(result['rows'])}\n"
        f"From `.venv/bin/python benchmarks/city_day.py`, which ran `{result['command']}` in "
        f"{result['wall_s']:.0f} s on {result['machine']['cpus']} cores (SUMO "
        f"{result['machine']['sumo']}) and recorded `benchmarks/results/city-day.json`.\n"
        f"{END}"
    )


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "sumo": version("eclipse-sumo"),
        "opencv": version("opencv-python-headless"),
        "commit": commit,
        # the machine may be shared: its load when the run started (2 cores: 2.0 is full)
        "load_average_1m": round(os.getloadavg()[0], 2),
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def run(speed: str, minutes: int) -> dict[str, Any]:
    host = machine()  # its load before the run
    with tempfile.TemporaryDirectory(prefix="cityos-city-day-") as folder:
        url = f"sqlite:///{folder}/demo.db"
        args = ["demo", "--no-serve", "--json", "--speed", speed, "--minutes", str(minutes)]
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "cityos.cli", *args, "--database-url", url],
            cwd=folder, stdout=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cityos demo failed (exit {done.returncode})")
    summary = json.loads(done.stdout)
    day = summary["day"]
    return {
        "command": "cityos " + " ".join(args) + " --database-url sqlite:///<temporary>/demo.db",
        "wall_s": round(wall, 1),
        "day_wall_s": day["wall_s"],
        "speed": day["speed"],
        "minutes": minutes,
        "date": day["date"],
        "replay_transport": summary.get("replay_transport"),
        "skipped": day["skipped"],
        "rows": day["rows"],
        "entities": day["entities"],
        "baseline": day["baseline"],
        "machine": host,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", default="600", help="simulated seconds per wall second, or max")
    p.add_argument("--minutes", type=int, default=60, help="minutes of the morning peak")
    p.add_argument("--markdown", action="store_true", help="print the recorded table, no run")
    p.add_argument("--readme", action="store_true", help="put the recorded table in README.md")
    a = p.parse_args(argv)
    if a.markdown or a.readme:
        if not RESULT.exists():
            raise SystemExit(f"no results yet at {RESULT}: run this script first")
        recorded = json.loads(RESULT.read_text())
        if a.markdown:
            print(markdown(recorded["rows"]), end="")
            return 0
        text = README.read_text()
        if START not in text or END not in text:
            raise SystemExit(f"README.md has no {START} ... {END} block to fill")
        head, rest = text.split(START, 1)
        README.write_text(head + readme_block(recorded) + rest.split(END, 1)[1])
        return 0
    result = run(a.speed, a.minutes)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result["rows"]), end="")
    print(f"\n{result['command']}: {result['wall_s']} s -> {RESULT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

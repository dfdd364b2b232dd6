"""docs/services/energy.md shows what the recorded CityLearn run holds
(benchmarks/results/energy-citylearn.json, made by benchmarks/energy_citylearn.py): the
table is the script's --report, never figures written by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_score_table_is_the_recorded_run() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "energy_citylearn.py"), "--report"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    doc = (ROOT / "docs" / "services" / "energy.md").read_text()
    begin, end = "<!-- energy:begin -->\n", "<!-- energy:end -->"
    assert doc[doc.index(begin) + len(begin) : doc.index(end)] == table
    assert "| no control | 1.000 |" in table

"""docs/conformance.md shows what the recorded runs of ETSI's suite hold
(benchmarks/results/conformance-*.json, made by benchmarks/conformance.py): the table is
the script's --report, never figures written by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_table_is_the_recorded_runs() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "conformance.py"), "--report"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    doc = (ROOT / "docs" / "conformance.md").read_text()
    begin, end = "<!-- conformance:begin -->\n", "<!-- conformance:end -->"
    assert doc[doc.index(begin) + len(begin) : doc.index(end)] == table
    assert "| **all** |" in table

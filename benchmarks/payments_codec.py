"""Payments QR codec benchmark: encode and decode throughput per scheme on one core.

For each scheme (KHQR, PromptPay, VietQR, QRIS, DuitNow, QR Ph, PayNow) it builds
``--payloads`` distinct codes (each with its own amount and bill number, as a fare machine
would), then times, best of ``--rounds``:

* ``encode``: the scheme's encoder, which writes the payload and decodes it again to hold
  itself to every rule (so an encode costs about one decode more than the writing);
* ``decode``: :func:`schemes.decode` -- structure, CRC, scheme detection and rules;
* ``parse``: :func:`emvco.parse` alone -- structure and CRC, no rules.

The process is pinned to one CPU (``os.sched_setaffinity``) and rates are given per wall
second and per CPU second (the machine may be shared). Writes
``benchmarks/results/payments-codec.json``. Usage::

    .venv/bin/python benchmarks/payments_codec.py [--payloads 2000] [--rounds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cityos.services.payments import emvco  # noqa: E402
from cityos.services.payments.schemes import (  # noqa: E402
    decode,
    duitnow,
    khqr,
    paynow,
    promptpay,
    qris,
    qrph,
    vietqr,
)

CREATED_MS = 1_767_225_600_000


def makers() -> dict[str, Callable[[int], str]]:
    """``{scheme: f(i) -> payload}``: the i-th code of a run, amount and bill varying."""
    return {
        "khqr": lambda i: khqr(
            "citybus@demo",
            "City Bus",
            "Phnom Penh",
            "KHR",
            1000 + i,
            bill_number=f"T{i:08d}",
            created_ms=CREATED_MS,
            expires_ms=CREATED_MS + 600_000,
        ),  # fmt: skip
        "promptpay": lambda i: promptpay(
            "0812345678", Decimal(1500 + i) / 100, reference=f"T{i:08d}"
        ),
        "vietqr": lambda i: vietqr("970436", "0011001234567", 7000 + i, purpose=f"VE {i:08d}"),
        "qris": lambda i: qris(
            "ID1020012345678",
            "TRANSJAKARTA",
            "JAKARTA",
            "10110",
            "4111",
            3500 + i,
            bill_number=f"T{i:08d}",
        ),  # fmt: skip
        "duitnow": lambda i: duitnow(
            "588734",
            "RAPIDKL0001",
            "RAPID KL",
            "KUALA LUMPUR",
            Decimal(150 + i) / 100,
            mcc="4111",
            bill_number=f"T{i:08d}",
        ),  # fmt: skip
        "qrph": lambda i: qrph(
            "RCBCPHMMXXX",
            "CITY BUS",
            "MANILA",
            15 + i,
            merchant_id="M0001",
            mcc="4111",
            bill_number=f"T{i:08d}",
        ),  # fmt: skip
        "paynow": lambda i: paynow(
            "201403121W",
            Decimal(120 + i) / 100,
            proxy_type="uen",
            merchant_name="CITY BUS",
            bill_number=f"T{i:08d}",
        ),  # fmt: skip
    }


def timed(work: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds) of ``rounds`` runs of ``work``."""
    best = (float("inf"), float("inf"))
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def pin() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"CPU {core}"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"python": platform.python_version(), "cpu": cpu, "cores": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    pinned = pin()
    n = args.payloads
    results: dict[str, Any] = {}
    for scheme, make in makers().items():
        payloads = [make(i) for i in range(n)]  # also warms up
        assert all(decode(p).scheme == scheme for p in payloads[:10])
        row: dict[str, Any] = {"payload_chars": round(sum(map(len, payloads)) / n, 1)}
        for phase, work in (
            ("encode", lambda make=make: [make(i) for i in range(n)]),
            ("decode", lambda payloads=payloads: [decode(p) for p in payloads]),
            ("parse", lambda payloads=payloads: [emvco.parse(p) for p in payloads]),
        ):
            wall, cpu = timed(work, args.rounds)
            row[phase] = {
                "per_s": round(n / wall),
                "per_cpu_s": round(n / cpu) if cpu > 0 else None,
                "us_each": round(wall / n * 1e6, 1),
            }
        results[scheme] = row
        print(
            f"{scheme:10s} {row['payload_chars']:6.1f} chars  encode {row['encode']['per_s']:7d}/s"
            f"  decode {row['decode']['per_s']:7d}/s  parse {row['parse']['per_s']:7d}/s"
        )
    out = {
        "benchmark": "payments-codec",
        "machine": machine(),
        "pinned": pinned,
        "inputs": {"payloads": n, "rounds": args.rounds, "best_of": "rounds (min wall time)"},
        "schemes": results,
        "note": (
            "encode includes a full decode of what it wrote (encoders hold themselves to the "
            "decoder's rules); parse is structure and CRC only"
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "payments-codec.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

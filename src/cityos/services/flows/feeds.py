"""Feeds from files: fare taps, Wi-Fi sightings and counter readings as CSV.

- taps: ``card,stop,time,kind`` (kind ``in`` or ``out``)
- sightings: ``mac,sensor,time``
- counts: ``sensor,start,end,count,direction`` (direction ``inbound`` or ``outbound``)

Times are ISO 8601 with an offset (or UTC). A malformed line stops the read with its line
number and what is wrong — never with the identifier it carries.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .errors import BadInput
from .model import CounterReading, Sighting, Tap

T = TypeVar("T")

COLUMNS = {
    "taps": ("card", "stop", "time", "kind"),
    "sightings": ("mac", "sensor", "time"),
    "counts": ("sensor", "start", "end", "count", "direction"),
}


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _rows(path: Path, kind: str, make: Callable[[dict[str, str]], T]) -> Iterator[T]:
    """The file's records, read lazily; opened and its header checked at once, so a
    missing file or a wrong header is reported before anything else happens."""
    need = COLUMNS[kind]
    try:
        fh = open(path, newline="", encoding="utf-8")  # noqa: SIM115 (closed by _records)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it ({exc.strerror})") from None
    reader = csv.DictReader(fh)
    missing = [c for c in need if c not in (reader.fieldnames or [])]
    if missing:
        fh.close()
        raise BadInput(f"{path}: a {kind} file needs columns {', '.join(need)} "
                       f"(missing {', '.join(missing)})")  # fmt: skip
    return _records(fh, reader, path, kind, make)


def _records(
    fh: Any, reader: csv.DictReader, path: Path, kind: str, make: Callable[[dict[str, str]], T]
) -> Iterator[T]:
    with fh:
        for n, row in enumerate(reader, start=2):
            try:
                yield make(row)
            except (ValueError, TypeError, AttributeError):
                raise BadInput(
                    f"{path}:{n}: not a valid {kind} line (columns {', '.join(COLUMNS[kind])}; "
                    "times ISO 8601)"
                ) from None


def _tap(r: dict[str, Any]) -> Tap:
    if not r["card"].strip() or r["kind"].strip() not in ("in", "out"):
        raise ValueError
    return Tap(r["card"].strip(), r["stop"].strip(), _time(r["time"]), r["kind"].strip())


def _sighting(r: dict[str, Any]) -> Sighting:
    if not r["mac"].strip():
        raise ValueError
    return Sighting(r["mac"].strip(), r["sensor"].strip(), _time(r["time"]))


def _count(r: dict[str, Any]) -> CounterReading:
    return CounterReading(
        r["sensor"].strip(),
        _time(r["start"]),
        _time(r["end"]),
        int(r["count"]),
        r["direction"].strip(),
    )


def read_taps(path: Path) -> Iterator[Tap]:
    return _rows(path, "taps", _tap)


def read_sightings(path: Path) -> Iterator[Sighting]:
    return _rows(path, "sightings", _sighting)


def read_counts(path: Path) -> Iterator[CounterReading]:
    return _rows(path, "counts", _count)

"""What the services' dashboard pages share: a reader over the viewer's client that asks in
every set of terms the city's data is written in, time buckets for charts, and attribute
accessors for normalized entities.

The sample district names its entities in the Smart Data Models terms, while the services'
own writers (OCPP, OpenADR, the signal service, the planner) use the core context: the same
short name is two IRIs, so each type is asked for in both (once where they agree) and merged
by id. Every read is one query of at most ``LIMIT`` entities, so a page view stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from cityos.hub.errors import Forbidden, ResourceNotFound
from cityos.twin.context import DISTRICT_TERMS

LIMIT = 1000  # entities read per type and set of terms
STEPS_MIN = (1, 5, 15, 30, 60, 180, 360, 1440)  # chart bucket widths, minutes
MAX_BUCKETS = 48


class Reader:
    """The viewer's client in the core context, the Smart Data Models terms and its own;
    each type asked once per distinct IRI, entities merged by id."""

    def __init__(self, client: Any, history_limit: int = 1000) -> None:
        self.views: list[Any] = []
        for ctx in (None, DISTRICT_TERMS, client.context):
            if all(ctx != v.context for v in self.views):
                self.views.append(client if ctx == client.context else client.for_context(ctx))
        self.view_of: dict[str, Any] = {}
        self.full: dict[str, bool] = {}  # type -> some query hit LIMIT
        self.history_limit = history_limit

    def _distinct(self, etype: str, terms: Iterable[str]) -> list[Any]:
        seen, out = set(), []
        for view in self.views:
            key = tuple(view.ctx.expand_term(t) for t in (etype, *terms))
            if key not in seen:
                seen.add(key)
                out.append(view)
        return out

    def entities(
        self,
        etype: str,
        q: str | None = None,
        terms: Iterable[str] = (),
        attrs: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for view in self._distinct(etype, (*terms, *(attrs or ()))):
            page = view.query(type=etype, q=q, attrs=attrs, limit=LIMIT)
            self.full[etype] = self.full.get(etype, False) or len(page) >= LIMIT
            for e in page:
                if e["id"] not in found:
                    found[e["id"]] = e
                    self.view_of[e["id"]] = view
        return list(found.values())

    def total(self, etype: str, read: int) -> int:
        """How many there are: what was read, or counted when a query was cut at LIMIT."""
        return self.count(etype) if self.full.get(etype) else read

    def count(self, etype: str) -> int:
        return sum(view.count(type=etype) for view in self._distinct(etype, ()))

    def history(
        self, entity: dict[str, Any], attr: str, after: datetime, *, minimum: float | None = None
    ) -> list[tuple[datetime, float]]:
        """The attribute's numeric instances since ``after`` (below ``minimum``: left out)."""
        view = self.view_of[entity["id"]]
        try:
            rows = view.history(entity["id"], attr, after=iso(after), limit=self.history_limit)
        except (ResourceNotFound, Forbidden):  # hidden from this viewer since it was read
            return []
        out = []
        for at, value in rows:
            when, number = parse_time(at), as_number(value)
            if when is not None and number is not None and (minimum is None or number >= minimum):
                out.append((when, number))
        return out


def bucket(
    histories: list[list[tuple[datetime, float]]],
) -> tuple[list[str], list[list[float | None]]] | None:
    """Each history's mean per time bucket (None where it has none), on shared labels; None
    when the histories hold fewer than two instants."""
    times = {t for h in histories for t, _ in h}
    if len(times) < 2:
        return None
    t0, t1 = min(times), max(times)
    span_min = (t1 - t0).total_seconds() / 60
    width = next((w for w in STEPS_MIN if span_min / w < MAX_BUCKETS), STEPS_MIN[-1])
    size = timedelta(minutes=width)
    start = t0 - (t0 - datetime(2000, 1, 1, tzinfo=UTC)) % size
    n = int((t1 - start) / size) + 1
    fmt = "%H:%M" if t1 - t0 < timedelta(days=1) else "%d %b %H:%M"
    labels = [(start + i * size).strftime(fmt) for i in range(n)]
    out: list[list[float | None]] = []
    for h in histories:
        sums, counts = [0.0] * n, [0] * n
        for t, v in h:
            i = int((t - start) / size)
            sums[i] += v
            counts[i] += 1
        out.append([s / c if c else None for s, c in zip(sums, counts, strict=True)])
    return labels, out


# -- attributes of normalized entities -----------------------------------------------------
def value(entity: dict[str, Any], attr: str) -> Any:
    a = entity.get(attr)
    if not isinstance(a, dict):
        return None
    return a.get("value", a.get("object"))


def number(entity: dict[str, Any], attr: str) -> float | None:
    return as_number(value(entity, attr))


def as_number(v: Any) -> float | None:
    return None if isinstance(v, bool) or not isinstance(v, int | float) else float(v)


def observed(entity: dict[str, Any], attr: str) -> datetime | None:
    a = entity.get(attr)
    return parse_time(a.get("observedAt")) if isinstance(a, dict) else None


def parse_time(raw: Any) -> datetime | None:
    if isinstance(raw, dict):  # {"@type": "DateTime", "@value": ...}
        raw = raw.get("@value")
    if not isinstance(raw, str):
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def time_text(raw: Any) -> str | None:
    t = parse_time(raw)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if t else None


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(entity_id: str) -> str:
    """``urn:ngsi-ld:Type:local`` -> ``local`` (the rest unchanged)."""
    parts = entity_id.split(":", 3)
    return unquote(parts[3]) if len(parts) == 4 and parts[0] == "urn" else entity_id

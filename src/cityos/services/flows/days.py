"""Local days and hours: the city's day starts at its own midnight (the privacy layer's
``timezone``), which is also when daily pseudonyms and daily budgets turn over."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .errors import BadInput


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"day {text!r} is not a date (YYYY-MM-DD)") from None


def local_day(at: datetime, zone: tzinfo) -> date:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(zone).date()


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The day's first instant and the next day's, in UTC."""
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def hours(day: date, zone: tzinfo) -> list[tuple[datetime, datetime]]:
    """The day's hours as UTC intervals (23 or 25 on a daylight-saving change)."""
    start, end = day_bounds(day, zone)
    out = []
    while start < end:
        out.append((start, start + timedelta(hours=1)))
        start += timedelta(hours=1)
    return out


def floor_minutes(at: datetime, minutes: int) -> datetime:
    """``at`` rounded down to a multiple of ``minutes`` (data minimisation before storage),
    in UTC; the same local times for every time zone whose offset is a multiple of it."""
    step = max(1, minutes) * 60
    ts = at.timestamp() if at.tzinfo else at.replace(tzinfo=UTC).timestamp()
    return datetime.fromtimestamp(ts - ts % step, UTC)

"""One day's internal outputs, built from what the hub holds and written back to it:
crowd level per zone and hour, crowding alerts, dwell times and the forecast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from .crowd import hour_levels, presences_overlapping, readings_of_day
from .crowding import crowding_alerts
from .datasets import declare_flows_datasets
from .days import day_bounds
from .dwell import dwell_entities, dwell_stats
from .entities import level_entity
from .forecast import forecast, forecast_entities, levels_since
from .model import HourLevel
from .service_settings import FlowsSettings
from .wifi import stays_of_day
from .zones import load_zones


@dataclass
class DayBuild:
    day: str
    zones: int
    hours: int
    readings: int
    alerts: int
    peak: HourLevel | None
    dwell: dict[str, dict[str, Any]]
    forecast_hours: int

    def as_dict(self) -> dict[str, Any]:
        peak = self.peak
        return {
            "day": self.day,
            "zones": self.zones,
            "zoneHours": self.hours,
            "readings": self.readings,
            "alerts": self.alerts,
            "peak": None
            if peak is None
            else {
                "zone": peak.zone,
                "start": peak.start.isoformat(),
                "peoplePresent": peak.present,
                "occupancy": round(peak.occupancy, 3),
            },
            "dwell": self.dwell,
            "forecastHours": self.forecast_hours,
        }


def build_day(
    client: Any,
    day: date,
    tz: tzinfo,
    settings: FlowsSettings | None = None,
    *,
    now: datetime | None = None,
) -> DayBuild:
    """Build ``day`` (up to ``now`` if it is still under way) and write the results."""
    settings = settings or FlowsSettings()
    now = now or datetime.now(UTC)
    zones = load_zones(client)
    declare_flows_datasets(client, settings)
    _, end = day_bounds(day, tz)
    until = min(now, end - timedelta(microseconds=1))
    readings = readings_of_day(client, day, tz)
    levels = hour_levels(
        zones, day, tz, readings, presences_overlapping(client, day, tz), until=until
    )
    client.upsert([level_entity(h) for h in levels], replace=True)
    alerts = crowding_alerts(levels, settings.alert_ratio)
    if alerts:
        client.upsert(alerts, replace=True)
    stats = dwell_stats(stays_of_day(client, day, tz).values())
    if stats:
        client.upsert(dwell_entities(day, stats), replace=True)
    history = levels_since(client, until - timedelta(days=settings.forecast_days), until)
    forecasts = forecast(history, zones, until, tz, alpha=settings.forecast_alpha)
    entities = forecast_entities(forecasts, until, settings.forecast_alpha)
    if entities:
        client.upsert(entities, replace=True)
    return DayBuild(
        day=day.isoformat(),
        zones=len(zones.zones),
        hours=len(levels),
        readings=len(readings),
        alerts=len(alerts),
        peak=max(levels, key=lambda h: h.occupancy, default=None),
        dwell=stats,
        forecast_hours=sum(len(rows) for rows in forecasts.values()),
    )

"""People flows through the day (the flows service): the sample district's people counters
report every quarter hour and its Wi-Fi access points their sightings, taken in each hour
through the service's own ingest (pseudonymised before anything is stored); the day's
fare-card file arrives at night; crowd levels, crowding alerts, dwell times and the forecast
are rebuilt every hour (``build_day``), so the dashboard's crowd page moves with the clock.

The pseudonymisation key is the configured one (``CITYOS_PRIVACY_KEY``), else (none, or one
too short) a one-off key made for this run and kept nowhere: the demo's pseudonyms then link
to nothing afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cityos.privacy import MissingKey, Pseudonymiser, load_settings
from cityos.services.flows import crowding
from cityos.services.flows.counters import ingest_counts
from cityos.services.flows.daybuild import DayBuild, build_day
from cityos.services.flows.fares import ingest_taps
from cityos.services.flows.service_settings import FlowsSettings
from cityos.services.flows.synthetic import (
    sample_zones,
    synthetic_counts,
    synthetic_sightings,
    synthetic_taps,
)
from cityos.services.flows.wifi import ingest_sightings
from cityos.services.flows.zones import ZoneMap, register_zones

from .context import DAY, HOUR_S, TZ, Day, Event, hhmm

CARDS = 2_000  # fare cards travelling in the district that day
PHONES = 600  # phones the Wi-Fi access points see
SEED = 1


@dataclass
class PeoplePhase:
    day: Day
    settings: FlowsSettings = field(default_factory=FlowsSettings)
    name: str = "flows"
    service: str = "flows"
    title: str = "People flows"
    zones: ZoneMap | None = None
    readings: list[Any] = field(default_factory=list)
    sightings: list[Any] = field(default_factory=list)
    taps: list[Any] = field(default_factory=list)
    pseudonymiser: Pseudonymiser | None = None
    counted: dict[str, int] = field(default_factory=lambda: {"inbound": 0, "outbound": 0})
    stays: int = 0
    journeys: int = 0
    built: DayBuild | None = None
    alerted: int = 0
    one_off_key: bool = False

    def events(self) -> list[Event]:
        hourly = [Event((h + 1) * HOUR_S, lambda h=h: self.hour(h)) for h in range(24)]
        return [Event(0.0, self.open), Event(hhmm("23:30"), self.fare_file), *hourly]

    def _client(self) -> Any:
        client = self.day.client(None)
        return client.for_tenant(self.settings.tenant) if self.settings.tenant else client

    def _pseudonymiser(self) -> Pseudonymiser:
        privacy = load_settings(self.day.settings)
        with contextlib.suppress(MissingKey):  # none, or too short: one for this run only
            return Pseudonymiser.from_settings(privacy)
        self.one_off_key = True
        return Pseudonymiser(secrets.token_hex(32), rotation=privacy.rotation,
                             timezone=privacy.timezone)  # fmt: skip

    def open(self) -> str:
        zones = sample_zones()
        self.zones = register_zones(self._client(), zones)
        self.pseudonymiser = self._pseudonymiser()
        self.readings = synthetic_counts(zones, DAY, TZ, seed=SEED)
        self.sightings = synthetic_sightings(zones, DAY, TZ, devices=PHONES, seed=SEED)
        self.taps = synthetic_taps(zones, DAY, TZ, cards=CARDS, seed=SEED)
        key = "a one-off key for this run" if self.one_off_key else "the configured key"
        return (f"People flows: {len(zones)} zones registered; counters and Wi-Fi report "
                f"through the day (pseudonyms under {key})")  # fmt: skip

    def hour(self, h: int) -> str | None:
        """The counters' and access points' hour ``h`` taken in, and the day rebuilt."""
        start = self.day.clock.at(h * HOUR_S)
        end = start + timedelta(hours=1)
        client = self._client()
        batch = [r for r in self.readings if start <= r.start < end]
        ingest_counts(client, batch, self.settings, self.zones)
        for r in batch:
            self.counted[r.direction] = self.counted.get(r.direction, 0) + r.count
        seen = [s for s in self.sightings if start <= s.at < end]
        if seen:
            self.stays = ingest_sightings(client, self.pseudonymiser, seen, self.settings,
                                          self.zones).stays  # fmt: skip
        self.built = build_day(client, DAY, TZ, self.settings, now=end)
        if self.built.alerts > self.alerted:
            self.alerted = self.built.alerts
            peak = self.built.peak
            where = f"{peak.zone} at {peak.occupancy:.0%} of its capacity" if peak else ""
            return f"[yellow]crowding[/yellow]: {self.built.alerts} alert(s) so far; {where}"
        return None

    def fare_file(self) -> str:
        """The fares feed's day file: tap-in/tap-out pairs become pseudonymous journeys."""
        result = ingest_taps(self._client(), self.pseudonymiser, self.taps, self.settings,
                             self.zones)  # fmt: skip
        self.journeys = result.journeys
        return (f"People flows: the day's fare-card file, {result.taps:,} taps -> "
                f"{result.journeys:,} journeys between zones")  # fmt: skip

    def result(self) -> dict[str, Any]:
        built = self.built.as_dict() if self.built else {}
        peak = dict(built.get("peak") or {})
        if peak:
            start = datetime.fromisoformat(peak["start"]).astimezone(TZ)
            peak["local"] = f"{start:%H:%M}–{start + timedelta(hours=1):%H:%M}"
        return {
            "zones": built.get("zones", 0),
            "people_counted_in": self.counted.get("inbound", 0),
            "people_counted_out": self.counted.get("outbound", 0),
            "wifi_stays": self.stays,
            "journeys": self.journeys,
            # raised through the day, as operators saw them (an hour's alert stays raised
            # though the hour's last figures, built later, fall back under the threshold)
            "crowding_alerts": self._client().count(
                type="Alert", q=f'subCategory=="{crowding.SUBCATEGORY}"'
            ),
            "alert_ratio": self.settings.alert_ratio,
            "peak": peak,
            "forecast_hours": built.get("forecastHours", 0),
            "one_off_key": self.one_off_key,
        }

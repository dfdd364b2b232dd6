"""People flows: counters, fare taps and Wi-Fi in; crowd levels, OD flows, dwell times,
crowding alerts and a forecast out — published only as differentially private releases
(docs/services/flows.md)."""

from .counters import ingest_counts
from .daybuild import build_day
from .errors import BadInput, FlowsError, NoZones, UnknownZone
from .fares import ingest_taps, pair_taps
from .model import CounterReading, Journey, Presence, Sighting, Tap, Zone
from .od import ODMatrix, build_od
from .releases import crowd_release, dwell_release, od_release
from .service import SERVICE
from .service_settings import FlowsSettings
from .wifi import ingest_sightings
from .zones import ZoneMap, load_zones, register_zones

__all__ = [
    "SERVICE",
    "BadInput",
    "CounterReading",
    "FlowsError",
    "FlowsSettings",
    "Journey",
    "NoZones",
    "ODMatrix",
    "Presence",
    "Sighting",
    "Tap",
    "UnknownZone",
    "Zone",
    "ZoneMap",
    "build_day",
    "build_od",
    "crowd_release",
    "dwell_release",
    "ingest_counts",
    "ingest_sightings",
    "ingest_taps",
    "load_zones",
    "od_release",
    "pair_taps",
    "register_zones",
]

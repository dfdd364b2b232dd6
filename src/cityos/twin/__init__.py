"""Simulated districts that drive the services for demos, tests and benchmarks."""

from .bulk import BULK_BBOX, bulk_box, generate_bulk
from .context import CONTEXT_URL, DISTRICT_CONTEXT, DISTRICT_TERMS
from .district import DISTRICT_BBOX, DISTRICT_TIME, count_by_type, generate_district
from .replay import sensor_updates

__all__ = [
    "BULK_BBOX",
    "CONTEXT_URL",
    "DISTRICT_BBOX",
    "DISTRICT_CONTEXT",
    "DISTRICT_TERMS",
    "DISTRICT_TIME",
    "bulk_box",
    "count_by_type",
    "generate_bulk",
    "generate_district",
    "sensor_updates",
]

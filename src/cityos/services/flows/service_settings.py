"""The flows service's settings: ``[services.flows]`` in cityos.toml or ``CITYOS_FLOWS_<FIELD>``.

In a module of their own so the engine modules (datasets, releases, the task) read them
without importing the plug (service.py), which imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FlowsSettings:
    """``[services.flows]`` in cityos.toml, or ``CITYOS_FLOWS_<FIELD>``."""

    tenant: str = field(default="", metadata={"help": "Tenant the flows entities live in"})
    interval_s: int = field(
        default=900,
        metadata={"help": "How often `cityos serve` updates today's crowd levels, alerts and "
                  "forecast; 0: never"},
    )  # fmt: skip
    alert_ratio: float = field(
        default=0.9,
        metadata={"help": "Occupancy (people / capacity) at which a zone raises a crowding Alert"},
    )
    forecast_alpha: float = field(
        default=0.5,
        metadata={"help": "Smoothing weight of the latest day in the seasonal forecast (0-1]"},
    )
    forecast_days: int = field(default=14, metadata={"help": "Past days the forecast learns from"})
    time_resolution_min: int = field(
        default=5,
        metadata={"help": "Tap and sighting times are rounded down to this many minutes "
                  "before they are stored"},
    )  # fmt: skip
    max_journeys_per_day: int = field(
        default=4,
        metadata={"help": "Journeys one card counts for in a day's OD release (more are "
                  "dropped): the release's sensitivity"},
    )  # fmt: skip
    max_zones_per_day: int = field(
        default=3,
        metadata={"help": "Zones one device counts for in a day's dwell-time release"},
    )
    max_crossings_per_day: int = field(
        default=10,
        metadata={"help": "Counter crossings one person is assumed to make in a day (counters "
                  "cannot enforce it): the crowd release's sensitivity"},
    )  # fmt: skip
    epsilon_per_day: float = field(
        default=1.0, metadata={"help": "Privacy budget (ε) of each dataset for each local day"}
    )
    delta_per_day: float = field(
        default=1e-6, metadata={"help": "... and its δ (used by the Gaussian mechanism)"}
    )
    journeys_retention_days: int = field(
        default=30, metadata={"help": "Days pseudonymised journeys are kept"}
    )
    wifi_retention_days: int = field(
        default=7, metadata={"help": "Days pseudonymised Wi-Fi stays are kept"}
    )
    counts_retention_days: int = field(
        default=365, metadata={"help": "Days counter counts and crowd levels are kept"}
    )

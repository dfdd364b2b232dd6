"""A day of the district's plan as a picture: load, battery and price per hour."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .planner import DayPlan, Tariff


def plot_day(p: DayPlan, path: Path, tariff: Tariff | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tariff = tariff or Tariff()
    hours = np.arange(24)
    base = p.load_kwh.sum(axis=0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(hours, base, label="forecast load, no control (kWh)", color="tab:gray")
    if p.schedule is not None:
        top.plot(hours, p.schedule.district_kwh, label="with the plan (kWh)", color="tab:blue")
        bottom.bar(hours, p.schedule.charge_kwh.sum(axis=0), label="batteries (+ charge)")
    top.set_ylabel("district draw, kWh/h")
    top.legend(loc="upper left")
    price = bottom.twinx()
    price.step(hours, tariff.prices(hours), where="mid", color="tab:red", label="price $/kWh")
    price.set_ylabel("price, $/kWh")
    bottom.set_ylabel("battery, kWh/h")
    bottom.set_xlabel("hour (UTC)")
    bottom.legend(loc="upper left")
    fig.suptitle(f"Energy plan {p.day} ({len(p.buildings)} buildings, {p.forecaster})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Charts of the RESCO delay per controller (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, pstdev


def delay_chart(
    delays: dict[str, dict[str, list[float]]],
    path: Path,
    *,
    published: dict[str, float] | None = None,
    title: str = "Average delay per vehicle (RESCO metric)",
) -> Path:
    """Grouped bars: one group per scenario, one bar per controller (mean over seeds, the
    spread as an error bar); ``published`` draws each scenario's best published figure as a
    dashed line over its group."""
    import matplotlib

    matplotlib.use("Agg")  # no screen on a server
    import matplotlib.pyplot as plt

    scenarios = list(delays)
    controllers = list(dict.fromkeys(c for per in delays.values() for c in per))
    width = 0.8 / max(1, len(controllers))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(scenarios) + 2), 4.2))
    for i, controller in enumerate(controllers):
        xs, ys, errs = [], [], []
        for j, scenario in enumerate(scenarios):
            values = delays[scenario].get(controller)
            if not values:
                continue
            xs.append(j + (i - (len(controllers) - 1) / 2) * width)
            ys.append(mean(values))
            errs.append(pstdev(values) if len(values) > 1 else 0.0)
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=controller)
    for j, scenario in enumerate(scenarios):
        if published and scenario in published:
            ax.hlines(published[scenario], j - 0.45, j + 0.45, colors="black", linestyles="dashed")
    if published:
        ax.plot([], [], "k--", label="best published")
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("seconds per vehicle")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

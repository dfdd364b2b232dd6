"""Synthetic inputs for the sample district (Daun Penh, Phnom Penh): zones, counter
readings, fare taps and Wi-Fi sightings with a daily rhythm — for the tests, the benchmark
and `cityos flows simulate`. Seeded, so a run is repeatable; the identifiers are made up
(card numbers 4000…, locally administered MAC addresses 02:…)."""

from __future__ import annotations

from datetime import date, timedelta, tzinfo

import numpy as np

from .days import day_bounds
from .model import CounterReading, Sighting, Tap, Zone

# (id, name, capacity, lon, lat, attractiveness)
_DISTRICT = (
    ("central-market", "Phsar Thmei (Central Market)", 6000, 104.9210, 11.5696, 3.0),
    ("wat-phnom", "Wat Phnom", 3000, 104.9233, 11.5763, 1.5),
    ("riverside", "Sisowath Quay riverside", 5000, 104.9310, 11.5700, 2.5),
    ("royal-palace", "Royal Palace park", 5000, 104.9310, 11.5637, 1.5),
    ("old-market", "Phsar Chas (Old Market)", 2500, 104.9270, 11.5735, 1.2),
    ("night-market", "Night market", 3000, 104.9280, 11.5745, 1.0),
    ("railway-station", "Railway station square", 3000, 104.9165, 11.5760, 1.0),
    ("post-office", "Post office square", 1500, 104.9237, 11.5745, 0.6),
)


def sample_zones() -> list[Zone]:
    return [
        Zone(
            id=zid,
            name=name,
            capacity=cap,
            stops=(f"stop-{zid}-1", f"stop-{zid}-2"),
            sensors=(f"counter-{zid}-1", f"counter-{zid}-2", f"ap-{zid}-1"),
            location=(lon, lat),
        )
        for zid, name, cap, lon, lat, _ in _DISTRICT
    ]


def synthetic_city(n_zones: int, *, seed: int = 1) -> tuple[list[Zone], list[float]]:
    """A bigger city for the benchmark: ``n_zones`` zones with lognormal attractiveness
    (a few hubs, many quiet zones), and those weights."""
    rng = np.random.default_rng(seed)
    zones = [
        Zone(id=f"z{i:03d}", name=f"Zone {i}", capacity=int(rng.integers(1000, 10_000)),
             stops=(f"stop-z{i:03d}-1", f"stop-z{i:03d}-2"), sensors=(f"counter-z{i:03d}-1",))
        for i in range(n_zones)
    ]  # fmt: skip
    return zones, [float(w) for w in rng.lognormal(0.0, 1.0, n_zones)]


def _weights(zones: list[Zone], weights: list[float] | None = None) -> np.ndarray:
    attract = {z[0]: z[5] for z in _DISTRICT}
    raw = weights if weights is not None else [attract.get(z.id, 1.0) for z in zones]
    w = np.array(raw, dtype=float)
    return w / w.sum()


def _profile(hour: np.ndarray) -> np.ndarray:
    """Arrivals by local hour: a morning, a lunchtime and a larger evening peak."""
    return (
        0.15
        + 1.0 * np.exp(-((hour - 8.0) ** 2) / 2.0)
        + 0.7 * np.exp(-((hour - 12.5) ** 2) / 2.0)
        + 1.6 * np.exp(-((hour - 18.5) ** 2) / 3.0)
    )


def synthetic_counts(
    zones: list[Zone], day: date, tz: tzinfo, *, seed: int = 1, step_min: int = 15,
    scale: float = 1.0,
) -> list[CounterReading]:  # fmt: skip
    """Each zone's counters, inbound and outbound, every ``step_min`` minutes. Entries follow
    the daily profile; exits follow the entries about 45 minutes later (90 on the riverside,
    whose evening crowd goes over its capacity), so people accumulate and leave."""
    rng = np.random.default_rng(seed)
    start, end = day_bounds(day, tz)
    steps = int((end - start).total_seconds() // (step_min * 60))
    local_hours = (
        np.array(
            [((start + timedelta(minutes=step_min * i)).astimezone(tz).hour) for i in range(steps)]
        )
        + (np.arange(steps) * step_min % 60) / 60
    )
    out: list[CounterReading] = []
    for z in zones:
        counters = [s for s in z.sensors if s.startswith("counter-")] or list(z.sensors[:1])
        busy = z.id == "riverside"  # evenings on the quay: people come and stay
        peak_share = 0.42 if busy else 0.12
        lag = max(1, round((90 if busy else 45) / step_min))
        mean_in = _profile(local_hours) * z.capacity * peak_share * step_min / 60 * scale
        entries = rng.poisson(mean_in)
        exits = np.concatenate([np.zeros(lag, dtype=int), entries[:-lag]])
        exits = rng.binomial(exits, 0.97)
        exits[-1] += max(0, int(entries.sum() - exits.sum()))  # the zone empties by night
        for i in range(steps):
            t0 = start + timedelta(minutes=step_min * i)
            t1 = t0 + timedelta(minutes=step_min)
            for direction, series in (("inbound", entries), ("outbound", exits)):
                share = rng.multinomial(int(series[i]), [1 / len(counters)] * len(counters))
                for sensor, n in zip(counters, share, strict=True):
                    out.append(CounterReading(sensor, t0, t1, int(n), direction))
    return out


def card_number(i: int) -> str:
    return f"4000{i:012d}"


def mac_address(i: int) -> str:
    digits = f"02{i:010x}"
    return ":".join(digits[k : k + 2] for k in range(0, 12, 2))


def synthetic_taps(
    zones: list[Zone], day: date, tz: tzinfo, *, cards: int, seed: int = 1,
    missing_tap_out: float = 0.02, weights: list[float] | None = None,
) -> list[Tap]:  # fmt: skip
    """A day of taps: each card makes a round trip (some one way, some three legs), between
    zones chosen by attractiveness, at morning/midday/evening times; a few tap-outs are
    missing, as on real feeds."""
    rng = np.random.default_rng(seed)
    start, _ = day_bounds(day, tz)
    w = _weights(zones, weights)
    n_zones = len(zones)
    legs = rng.choice([1, 2, 3], size=cards, p=[0.2, 0.7, 0.1])
    total = int(legs.sum())
    card_of = np.repeat(np.arange(cards), legs)
    leg_no = np.concatenate([np.arange(k) for k in legs]) if cards else np.array([], int)
    first = rng.choice(n_zones, size=cards, p=w)
    dest = rng.choice(n_zones, size=total, p=w)
    departure = np.where(rng.random(cards) < 0.6, rng.normal(7.8, 1.0, cards),
                         rng.normal(11.0, 2.0, cards)).clip(5, 20)  # fmt: skip
    hour = departure[card_of] + leg_no * rng.uniform(2, 9, total)
    hour = hour.clip(5, 23.2)
    duration = rng.uniform(8, 55, total)  # minutes
    stops_of = [z.stops for z in zones]
    taps: list[Tap] = []
    origin = first[card_of].copy()
    for i in range(total):
        if leg_no[i] > 0:
            origin[i] = dest[i - 1]
        if dest[i] == origin[i]:
            dest[i] = (dest[i] + 1 + rng.integers(n_zones - 1)) % n_zones
        card = card_number(int(card_of[i]))
        t_in = start + timedelta(hours=float(hour[i]))
        o_stops, d_stops = stops_of[origin[i]], stops_of[dest[i]]
        taps.append(Tap(card, o_stops[i % len(o_stops)], t_in, "in"))
        if rng.random() >= missing_tap_out:
            t_out = t_in + timedelta(minutes=float(duration[i]))
            taps.append(Tap(card, d_stops[i % len(d_stops)], t_out, "out"))
    return taps


def synthetic_sightings(
    zones: list[Zone], day: date, tz: tzinfo, *, devices: int, seed: int = 1,
    every_min: int = 5,
) -> list[Sighting]:  # fmt: skip
    """Phones visiting one or two zones for a lognormal stay (median about 40 minutes),
    seen by the zone's access point every ``every_min`` minutes while there."""
    rng = np.random.default_rng(seed)
    start, _ = day_bounds(day, tz)
    w = _weights(zones)
    aps = [[s for s in z.sensors if s.startswith("ap-")] or list(z.sensors) for z in zones]
    out: list[Sighting] = []
    for d in range(devices):
        mac = mac_address(d)
        arrive = float(rng.normal(14, 3.5))
        for zi in rng.choice(len(zones), size=int(rng.choice([1, 2], p=[0.7, 0.3])), p=w):
            stay = float(rng.lognormal(np.log(40), 0.8))
            arrive = min(max(arrive, 6.0), 22.5)
            t = start + timedelta(hours=arrive)
            for k in range(int(stay // every_min) + 1):
                out.append(Sighting(mac, aps[zi][0], t + timedelta(minutes=every_min * k)))
            arrive += stay / 60 + float(rng.uniform(0.1, 1.0))
    return out

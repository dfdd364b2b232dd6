"""DP releases: the noise OpenDP adds has the expected size, the figures carry their ε, δ
and mechanism, small cells are suppressed, and bad requests change nothing."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest

from cityos.hub.client import HubClient
from cityos.privacy import BudgetExceeded, InvalidRelease, Ledger, declare, release_counts

from .conftest import TRIPS

BIG = replace(TRIPS, epsilon=100.0, delta=1e-3)
N = 20_000  # draws per test: the sample std is within ~1% of the true one


def _release(client: HubClient, **kw):
    args = {"sensitivity": 1, "epsilon": 0.5, "threshold": 0, **kw}
    counts = kw.pop("counts", None)
    domain = kw.pop("domain", None)
    for key in ("counts", "domain"):
        args.pop(key, None)
    domain = domain or list(range(N))
    counts = counts if counts is not None else dict.fromkeys(domain, 100)
    return release_counts(client, BIG, "2024-05-01", "test", counts, domain, **args)


def test_laplace_noise_has_scale_sensitivity_over_epsilon(client: HubClient) -> None:
    release = _release(client, sensitivity=2, epsilon=0.5)
    errors = [release.value(str(k)) - 100 for k in range(N)]
    b = 2 / 0.5
    assert release.scale == pytest.approx(b)
    assert statistics.pstdev(errors) == pytest.approx(b * math.sqrt(2), rel=0.05)
    assert statistics.fmean(errors) == pytest.approx(0, abs=0.25)
    # the mean absolute error of a Laplace(b) draw is b (the discrete one a shade less)
    assert statistics.fmean(abs(e) for e in errors) == pytest.approx(b, rel=0.05)
    assert release.epsilon == pytest.approx(0.5) and release.delta == 0


def test_gaussian_noise_matches_its_scale_and_carries_delta(client: HubClient) -> None:
    release = _release(client, mechanism="gaussian", epsilon=1.0, delta=1e-6)
    errors = [release.value(str(k)) - 100 for k in range(N)]
    assert statistics.pstdev(errors) == pytest.approx(release.scale, rel=0.05)
    assert 3 < release.scale < 6  # sensitivity 1 at (1, 1e-6)
    assert (release.epsilon, release.delta) == (pytest.approx(1.0), pytest.approx(1e-6))


def test_every_release_says_how_private_it_is(client: HubClient) -> None:
    out = _release(client, domain=["A", "B"], counts={"A": 50, "B": 3}, threshold=10).as_dict()
    assert out["privacy"]["epsilon"] == pytest.approx(0.5)
    assert out["privacy"]["delta"] == 0
    assert out["privacy"]["mechanism"] == "OpenDP discrete Laplace"
    assert out["privacy"]["noiseScale"] == pytest.approx(2.0)
    assert out["privacy"]["suppressedBelow"] == 10
    assert set(out["cells"]) == {"A", "B"}
    entries = Ledger(client).entries("trips", "2024-05-01")
    assert [(e.query, e.cells, e.mechanism) for e in entries] == [("test", 2, "laplace")]


def test_small_cells_are_suppressed(client: HubClient) -> None:
    release = _release(
        client, domain=["big", "small"], counts={"big": 10_000, "small": 0}, epsilon=5.0,
        threshold=10,
    )  # fmt: skip
    assert release.cells["small"] == "<10" and release.value("small") is None
    assert abs(release.value("big") - 10_000) < 50


def test_od_cells_are_named_origin_to_destination(client: HubClient) -> None:
    domain = [("A", "B"), ("B", "A")]
    release = _release(client, domain=domain, counts={("A", "B"): 500}, epsilon=5.0)
    assert set(release.cells) == {"A->B", "B->A"}


@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), float("inf"), "1"])
def test_epsilon_at_or_below_zero_is_refused_and_nothing_stored(
    client: HubClient, epsilon: object
) -> None:
    declare(client, BIG)
    with pytest.raises(InvalidRelease, match="epsilon must be a number above 0"):
        _release(client, domain=["A"], counts={"A": 1}, epsilon=epsilon)
    assert client.count(type="PrivacyBudgetEntry") == 0
    assert client.count() == 1  # the declaration only


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"delta": 1e-6}, "Laplace mechanism is pure"),
        ({"mechanism": "gaussian"}, "needs delta > 0"),
        ({"mechanism": "exponential"}, "use laplace or gaussian"),
        ({"delta": 1.0, "mechanism": "gaussian"}, r"delta must be in \[0, 1\)"),
        ({"sensitivity": 0}, "sensitivity"),
        ({"counts": {"Z": 3}}, "outside the release's domain"),
        ({"counts": {"A": -1}}, "negative"),
        ({"domain": ["A", "A"]}, "distinct"),
    ],
)
def test_bad_requests_are_refused_before_any_charge(client: HubClient, kw, message) -> None:
    args = {"domain": ["A"], "counts": {"A": 1}, **kw}
    with pytest.raises(InvalidRelease, match=message):
        _release(client, **args)
    assert client.count(type="PrivacyBudgetEntry") == 0


def test_an_over_budget_release_is_refused(client: HubClient) -> None:
    small = replace(TRIPS, epsilon=1.0)
    args = {"sensitivity": 1, "threshold": 0}
    release_counts(client, small, "2024-05-01", "od", {"A": 5}, ["A"], epsilon=0.7, **args)
    with pytest.raises(BudgetExceeded, match="ε=0.3, δ=1e-06 left on 2024-05-01"):
        release_counts(client, small, "2024-05-01", "od", {"A": 5}, ["A"], epsilon=0.7, **args)
    assert Ledger(client).spent("trips", "2024-05-01").releases == 1

"""The ledger is authoritative: spent budgets add up and an over-budget charge is refused."""

from __future__ import annotations

import pytest

from cityos.hub.client import HubClient
from cityos.privacy import BudgetExceeded, Ledger, declare
from cityos.privacy.ledger import Entry

from .conftest import TRIPS


def _charge(ledger: Ledger, eps: float, delta: float = 0.0, period: str = "2024-05-01") -> Entry:
    return ledger.charge(TRIPS, period, eps, delta, mechanism="laplace", query="od", cells=4)


def test_charges_add_up_to_the_budget_and_no_further(client: HubClient) -> None:
    declare(client, TRIPS)
    ledger = Ledger(client)
    assert [_charge(ledger, 0.5).seq, _charge(ledger, 0.3).seq, _charge(ledger, 0.2).seq] == [
        1,
        2,
        3,
    ]
    spent = ledger.spent("trips", "2024-05-01")
    assert spent.epsilon == pytest.approx(1.0) and spent.releases == 3
    with pytest.raises(
        BudgetExceeded, match=r"refused: dataset trips has ε=0, δ=1e-06 left on 2024-05-01"
    ):
        _charge(ledger, 0.01)
    assert ledger.spent("trips", "2024-05-01").releases == 3  # nothing written
    assert _charge(ledger, 1.0, period="2024-05-02").seq == 1  # another day, its own budget


def test_delta_is_budgeted_too(client: HubClient) -> None:
    ledger = Ledger(client)
    _charge(ledger, 0.1, 1e-6)
    with pytest.raises(BudgetExceeded, match="δ"):
        _charge(ledger, 0.1, 1e-7)


def test_a_concurrent_charge_is_seen_before_writing(client: HubClient, monkeypatch) -> None:
    """Two processes read the same ledger; the second to write gets AlreadyExists for its
    entry number, reads again and is refused on the budget the first one spent."""
    ledger = Ledger(client)
    _charge(ledger, 0.6)
    real = Ledger.entries
    stale = real(ledger, "trips", "2024-05-01")
    calls = {"n": 0}

    def entries(self, dataset, period=None):
        calls["n"] += 1
        if calls["n"] == 1:
            Ledger(client).charge(TRIPS, "2024-05-01", 0.3, 0.0, mechanism="laplace", query="x",
                                  cells=1)  # fmt: skip
            return stale  # what this process read before the other wrote
        return real(self, dataset, period)

    monkeypatch.setattr(Ledger, "entries", entries)
    with pytest.raises(BudgetExceeded):
        ledger.charge(TRIPS, "2024-05-01", 0.3, 0.0, mechanism="laplace", query="y", cells=1)
    monkeypatch.setattr(Ledger, "entries", real)
    assert ledger.spent("trips", "2024-05-01").epsilon == pytest.approx(0.9)

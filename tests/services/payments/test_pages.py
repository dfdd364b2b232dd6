"""The payments page of the operations dashboard: taps go through the service's own fare
collector and ledger (SQLite), its publication writes the stops' days into a hub, and the
page shows those figures — boardings, revenue, cashless share, payment media, stops — or,
on an empty hub, what feeds it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.plug import PANEL_KINDS, Panel
from cityos.services.payments.ledger import Transfer
from cityos.services.payments.pages import panels
from cityos.services.payments.runtime import PaymentsSettings, payments_of
from cityos.services.payments.service import SERVICE, publish_once
from cityos.services.payments.taps import TapRequest

TZ = ZoneInfo("Asia/Phnom_Penh")
DAY, DAY_BEFORE = "2026-03-02", "2026-03-01"


def at(hhmm: str, day: str = DAY) -> int:
    return int(datetime.fromisoformat(f"{day} {hhmm}").replace(tzinfo=TZ).timestamp())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    the_hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    yield the_hub
    the_hub.close()


@pytest.fixture
def client(hub: Hub) -> HubClient:
    return HubClient(hub)


@pytest.fixture
def ctx(tmp_path: Path, client: HubClient) -> Iterator[Any]:
    """The service's context as `cityos serve` hands it: its settings, its client."""
    settings = PaymentsSettings(
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        ticket_key_path=str(tmp_path / "ticket.pem"),
        pseudonym_key_path=str(tmp_path / "pseudonym.key"),
    )
    core = Settings(database_url=f"sqlite:///{tmp_path}/hub.db")
    context = SimpleNamespace(name="payments", client=client, settings=settings, core=core,
                              state={})  # fmt: skip
    yield context
    if "payments" in context.state:
        context.state["payments"].close()


def by_kind(found: list[Panel]) -> dict[str, list[Panel]]:
    assert all(isinstance(p, Panel) and p.kind in PANEL_KINDS for p in found)
    out: dict[str, list[Panel]] = {}
    for p in found:
        out.setdefault(p.kind, []).append(p)
    return out


def fares(ctx: Any) -> None:
    """On DAY: a wallet and a cash boarding at Wat Phnom, a scheme QR one at Phsar Thmei
    (1,500 riel each, the city bus's flat fare); the day before, one cash boarding."""
    collector = payments_of(ctx).collector()
    collector.open_operators()
    ledger = collector.ledger
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("cash:city-bus", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("rider:a", "KHR")
    ledger.transfer(Transfer("settlement:khqr", "rider:a", 1_000_000, "KHR", id="top-up"))
    for n, (when, stop, medium, account, day) in enumerate([
        ("07:00", "wat-phnom", "account", "rider:a", DAY),
        ("08:00", "wat-phnom", "cash", "cash:city-bus", DAY),
        ("09:00", "phsar-thmei", "emvco", "settlement:khqr", DAY),
        ("18:00", "wat-phnom", "cash", "cash:city-bus", DAY_BEFORE),
    ]):  # fmt: skip
        collector.tap(TapRequest(id=f"reader:{n}", stop=stop, product="bus", at=at(when, day),
                                 medium=medium, account=account))  # type: ignore[arg-type]  # fmt: skip
    assert publish_once(ctx, DAY_BEFORE) == 1
    assert publish_once(ctx, DAY) == 2


def test_the_page_is_in_the_plug() -> None:
    (page,) = SERVICE.pages()
    assert (page.slug, page.order) == ("payments", 60)
    assert page.reads == ("FareCollectionObserved",) and page.panels is panels


def test_an_empty_hub_says_what_is_missing_and_what_feeds_it(client: HubClient) -> None:
    (only,) = panels(client)
    assert only.kind == "text"
    assert "FareCollectionObserved" in only.data and "/services/payments/taps" in only.data


def test_the_latest_day_as_the_service_published_it(ctx: Any, client: HubClient) -> None:
    fares(ctx)
    found = by_kind(panels(client))

    (top,) = found["metrics"]
    assert top.title == f"Fares on {DAY}"
    shown = {m["label"]: m for m in top.data}
    assert shown["Boardings"]["value"] == 3
    assert (shown["Fare revenue"]["value"], shown["Fare revenue"]["unit"]) == (4500, "KHR")
    assert shown["Cashless share"]["value"] == 66.7  # wallet and QR, not cash
    assert shown["Cashless share"]["unit"] == "%"

    by_medium, per_day = found["chart"]
    assert by_medium.data["x"] == ["Wallet account", "Scheme QR (EMVCo)", "Cash"]
    assert by_medium.data["series"] == [{"name": DAY, "values": [1, 1, 1]}]
    assert by_medium.data["kind"] == "bar"
    assert per_day.data["x"] == [DAY_BEFORE, DAY]
    assert per_day.data["series"] == [
        {"name": "All", "values": [1, 3]},
        {"name": "Cashless", "values": [0, 2]},
    ]

    media, stops = found["table"]
    assert media.data["columns"] == ["Paid by", "Cashless", "Boardings", "Share (%)"]
    assert media.data["rows"][-1] == ["Cash", False, 1, 33.3]
    assert stops.data["columns"] == ["Stop", "Boardings", "Cashless (%)", "Revenue"]
    assert stops.data["rows"] == [
        ["wat-phnom", 2, 50.0, "3,000 KHR"],
        ["phsar-thmei", 1, 100.0, "1,500 KHR"],
    ]


def test_one_day_only_has_no_chart_of_days(ctx: Any, client: HubClient) -> None:
    fares(ctx)
    client.delete(f"urn:ngsi-ld:FareCollectionObserved:wat-phnom:{DAY_BEFORE}")
    found = by_kind(panels(client))
    assert [c.data["x"][0] for c in found["chart"]] == ["Wallet account"]


def test_a_role_that_may_not_read_the_summaries(viewer, ctx: Any, client: HubClient) -> None:
    fares(ctx)
    with viewer("TrafficSignal"):
        (only,) = panels(client)
    assert only.kind == "text"
    with viewer("FareCollectionObserved"):
        assert by_kind(panels(client))["metrics"][0].data[0]["value"] == 3

"""The dashboard's server side: pages from the plug, drawing (escaped), the live feed's
subscriptions, and what a bad page or a bad request gets."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.plug import Page, Panel, Service
from cityos.web.dashboard import Dashboard
from cityos.web.dashboard.draw import page_html, panel_html
from cityos.web.dashboard.live import LiveFeed
from cityos.web.dashboard.svg import chart_svg, level_colour, map_svg

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

EVIL = '<script>alert("x")</script>'


def test_every_value_a_service_hands_over_is_escaped() -> None:
    panels = [
        Panel(EVIL, "metrics", [{"label": EVIL, "value": EVIL, "unit": EVIL, "hint": EVIL}]),
        Panel("t", "table", {"columns": [EVIL], "rows": [[EVIL]]}),
        Panel(
            "a", "alerts", [{"id": EVIL, "category": EVIL, "severity": EVIL, "description": EVIL}]
        ),
        Panel(
            "c",
            "chart",
            {"x": [EVIL, "b"], "series": [{"name": EVIL, "values": [1, 2]}], "unit": EVIL},
        ),
        Panel(
            "m",
            "map",
            {
                "features": [
                    {
                        "geometry": {"type": "Point", "coordinates": [1, 2]},
                        "layer": EVIL,
                        "label": EVIL,
                    }
                ]
            },
        ),
        Panel("x", "text", EVIL),
    ]
    html = page_html(panels, [EVIL])
    assert "<script" not in html and "&lt;script&gt;" in html


def test_a_panel_kind_outside_the_list_is_refused() -> None:
    with pytest.raises(ValueError, match="panel kind"):
        Panel("x", "iframe", "http://elsewhere")


def test_the_map_projects_draws_by_layer_and_skips_bad_geometries() -> None:
    features = [
        {
            "geometry": {"type": "LineString", "coordinates": [[104.90, 11.56], [104.93, 11.58]]},
            "layer": "road",
        },
        {
            "geometry": {"type": "Point", "coordinates": [104.91, 11.57]},
            "layer": "traffic",
            "level": 1.0,
        },
        {
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[104.90, 11.56], [104.901, 11.56], [104.901, 11.561], [104.90, 11.56]]
                ],
            },
            "layer": "building",
        },
        {"geometry": {"type": "Point", "coordinates": ["x", None]}, "layer": "broken"},
        {"geometry": {"type": "Point", "coordinates": [float("nan"), 1]}, "layer": "broken"},
        {"geometry": None, "layer": "broken"},
    ]
    svg = map_svg(features)
    assert svg.count('class="feature"') == 3 and "broken" not in svg
    assert f'fill="{level_colour(1.0)}"' in svg  # the congested point in red
    # west is left, north is up: the road runs from bottom-left to top-right
    d = svg.split('data-layer="road" d="M')[1].split('"')[0]
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in d.split(" L"))
    assert x1 > x0 and y1 < y0
    assert "Nothing with a location" in map_svg([])


def test_a_chart_scales_its_series_and_says_when_there_is_nothing() -> None:
    svg = chart_svg({"x": ["00", "01", "02"], "series": [{"name": "kW", "values": [0, 5, 10]}]})
    assert 'data-series="kW"' in svg and ">10<" in svg
    bars = chart_svg({"x": ["a", "b"], "series": [{"name": "n", "values": [1, 3]}], "kind": "bar"})
    assert bars.count('class="bar"') == 2
    assert "No values" in chart_svg({"x": [], "series": []})
    assert "No values" in chart_svg({"x": ["a"], "series": [{"name": "n", "values": [None]}]})


def test_alerts_open_to_their_details() -> None:
    html = panel_html(
        Panel(
            "a",
            "alerts",
            [
                {
                    "id": "urn:a",
                    "category": "traffic",
                    "severity": "high",
                    "description": "jam",
                    "time": "t",
                }
            ],
        )
    )
    assert '<details class="alert sev-high" data-id="urn:a">' in html and "<dd>urn:a</dd>" in html


def _service(name: str, *pages: Page) -> Service:
    return Service(name=name, pages=lambda: list(pages))


def test_two_services_bringing_one_page_stop_the_app() -> None:
    page = Page("same", "Same", panels=lambda c: [])
    with pytest.raises(ValueError, match="'same' is brought by both a and b"):
        Dashboard([_service("a", page), _service("b", page)], {})


@pytest.fixture
def app(tmp_path) -> Any:
    from cityos.web.app import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/hub.db",
        audit_key_path=str(tmp_path / "audit.pem"),
        dashboard_stream_s=0,
    )
    return create_app(settings, Hub(settings))


def test_the_api_lists_pages_in_order_and_draws_one(app) -> None:
    with TestClient(app) as client:
        pages = client.get("/ui/api/pages").json()
        assert pages[0]["slug"] == "overview" and pages[-1]["slug"] == "indicators"
        orders = [p["slug"] for p in pages]
        assert orders.index("traffic") < orders.index("energy") < orders.index("payments")
        page = client.get("/ui/api/pages/overview").json()
        assert page["hidden"] == [] and "The hub holds nothing with a location" in page["html"]
        assert client.get("/ui/api/pages/nope").status_code == 404
        r = client.get("/ui/api/pages/overview", headers={"NGSILD-Tenant": "nobody"})
        assert r.status_code == 404
        shell = client.get("/")
        assert shell.headers["content-security-policy"].startswith(
            "default-src 'none'; script-src 'self'"
        )
        assert '<script src="/ui/app.js"' in shell.text
        events = client.get("/ui/api/pages/overview/events")
        assert events.headers["content-type"].startswith("text/event-stream")
        assert events.text.startswith("retry:")


def test_a_broken_page_is_its_own_failure(tmp_path, monkeypatch) -> None:
    import cityos.web.app as web_app
    from cityos.services.registry import services

    def broken(client: Any) -> list[Panel]:
        raise RuntimeError("boom")

    extra = _service("broken", Page("bad", "Bad", panels=broken))
    monkeypatch.setattr(web_app, "services", lambda: (*services(), extra))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/hub.db", audit_key_path=str(tmp_path / "audit.pem")
    )
    with TestClient(web_app.create_app(settings, Hub(settings))) as client:
        bad = client.get("/ui/api/pages/bad")
        assert bad.status_code == 200 and "could not be drawn: RuntimeError" in bad.json()["html"]
        assert "boom" not in bad.text  # the reason stays in the server's log
        assert client.get("/ui/api/pages/overview").status_code == 200


def test_the_live_feed_shares_one_subscription_and_removes_it(tmp_path) -> None:
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/hub.db"))
    client = HubClient(hub)
    feed = LiveFeed(client)
    uri = client.ctx.expand_term("Alert")

    def subscriptions() -> int:
        return len(hub.store.list_subscriptions(""))

    async def run() -> None:
        async with feed.listen("", [uri]) as a, feed.listen("", [uri]) as b:
            assert subscriptions() == 1
            receive = hub.local_receivers[next(iter(hub.local_receivers))]
            receive({"data": []})
            assert a.get_nowait() == uri and b.get_nowait() == uri
        assert subscriptions() == 0 and not feed.listeners

    asyncio.run(run())

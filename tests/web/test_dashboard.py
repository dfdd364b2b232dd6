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
        assert pages[0]["slug"] == "overview" and pages[-1]["slug"] == "plan"
        orders = [p["slug"] for p in pages]
        assert orders.index("traffic") < orders.index("energy") < orders.index("payments")
        assert orders.index("payments") < orders.index("indicators") < orders.index("plan")
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


# -- a page's form, and its answer --------------------------------------------------------


def _form_panel(**extra: Any) -> Panel:
    return Panel(
        EVIL,
        "form",
        {
            "intro": EVIL,
            "submit": EVIL,
            "fields": [
                {"name": "city", "label": EVIL, "kind": "select", "group": EVIL, "value": EVIL,
                 "options": [{"value": EVIL, "label": EVIL}, "plain"], "help": EVIL,
                 "fills": {EVIL: {"n": EVIL}}},
                {"name": EVIL, "label": "n", "kind": "number", "value": EVIL, "min": 1},
                {"name": "r", "label": EVIL, "kind": "range", "value": 3, "min": 1, "max": 5},
                {"name": "c", "label": EVIL, "kind": "checkbox", "value": True, "help": EVIL},
                {"name": "t", "label": EVIL, "kind": "text", "value": EVIL},
            ],
            **extra,
        },
    )  # fmt: skip


def test_a_form_is_drawn_labelled_with_every_value_escaped() -> None:
    html = panel_html(_form_panel())
    assert "<script" not in html and "&lt;script&gt;" in html
    quoted = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"  # no attribute broken out of
    assert f'name="{quoted}"' in html and f'value="{quoted}"' in html
    # every input has its label, tied by id; help is tied by aria-describedby
    assert '<label for="field-city">' in html and 'id="field-city"' in html
    assert 'aria-describedby="field-city-help"' in html and 'id="field-city-help"' in html
    assert '<option value="plain">plain</option>' in html
    assert "selected>&lt;script&gt;" in html  # the value chosen, escaped
    assert 'type="checkbox" id="field-c" name="c" data-kind="checkbox"' in html
    assert "checked" in html and 'min="1" max="5"' in html and "<output" in html
    assert "data-fills=" in html and "&quot;n&quot;" in html  # the presets, as escaped JSON
    assert "<fieldset><legend>&lt;script&gt;" in html
    # the answer goes right under the form, the page's width
    assert html.endswith('</section><div class="form-result" aria-live="polite"></div>')
    assert '<section class="panel form wide">' in html


def test_a_form_field_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="form field 'x' of kind 'file'"):
        Panel("f", "form", {"fields": [{"name": "x", "label": "x", "kind": "file"}]})


def test_text_may_be_several_paragraphs() -> None:
    html = panel_html(Panel("t", "text", ["one", EVIL]))
    assert html.count('<p class="text">') == 2 and "&lt;script&gt;" in html


def test_bars_sit_inside_the_chart() -> None:
    svg = chart_svg(
        {"x": ["a", "b", "c"], "series": [{"name": "n", "values": [1, 2, 3]}], "kind": "bar"}
    )
    xs = [float(part.split('"')[1]) for part in svg.split('class="bar" x=')[1:]]
    widths = [
        float(part.split('width="')[1].split('"')[0]) for part in svg.split('class="bar"')[1:]
    ]
    assert len(xs) == 3 and xs[0] > 56 and xs[-1] + widths[-1] < 640
    assert all(f">{label}<" in svg for label in "abc")  # every label shown where they fit


def _echo(client: Any, values: dict[str, Any]) -> list[Panel]:
    from cityos.plug import FormError

    if not isinstance(values.get("n"), int):
        raise FormError("n", f"n: expected a whole number, got {values.get('n')!r}")
    if values["n"] < 0:
        raise RuntimeError("a secret reason")
    return [Panel("Echo", "table", {"columns": ["name", "value"],
                                    "rows": [[k, v] for k, v in values.items()]})]  # fmt: skip


@pytest.fixture
def answering(tmp_path, monkeypatch) -> Any:
    import cityos.web.app as web_app
    from cityos.services.registry import services

    page = Page("echo", "Echo", panels=lambda c: [_form_panel()], answer=_echo)
    monkeypatch.setattr(web_app, "services", lambda: (*services(), _service("echo", page)))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/hub.db",
        audit_key_path=str(tmp_path / "audit.pem"),
        dashboard_stream_s=0,
    )
    with TestClient(web_app.create_app(settings, Hub(settings))) as client:
        yield client


def test_a_form_is_answered_with_panels_drawn_and_escaped(answering) -> None:
    r = answering.post("/ui/api/pages/echo", json={"n": 2, "name": EVIL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["slug"] == "echo" and "<td>2</td>" in body["html"]
    assert "<script" not in body["html"] and "&lt;script&gt;" in body["html"]


def test_what_a_form_post_is_refused_for(answering) -> None:
    def post(body: bytes, slug: str = "echo") -> Any:
        headers = {"Content-Type": "application/json"}
        return answering.post(f"/ui/api/pages/{slug}", content=body, headers=headers)

    for body, why in (
        (b'{"n": ', "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'"n"', "expected a JSON object"),
        (b"", "body is empty"),
    ):
        r = post(body)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert why in r.json()["detail"] and "\n" not in r.json()["detail"]
    big = post(b'{"n": 1, "pad": "' + b"x" * 70_000 + b'"}')
    assert big.status_code == 413 and "65536" in big.json()["detail"]
    # a value the page refuses: 400 naming the field
    refused = post(b'{"n": "two"}')
    assert refused.status_code == 400 and refused.json()["field"] == "n"
    assert refused.json()["detail"].startswith("n: expected a whole number")
    # a page that takes no answers
    none = post(b'{"n": 1}', slug="overview")
    assert none.status_code == 405 and none.headers["allow"] == "GET"
    assert post(b'{"n": 1}', slug="nope").status_code == 404
    # a page whose answer breaks says so, and keeps its reason to the server's log
    broken = post(b'{"n": -1}')
    assert broken.status_code == 200 and "could not be answered: RuntimeError" in broken.text
    assert "a secret reason" not in broken.text


def test_the_plan_page_refuses_a_wrong_answer_by_its_field(app) -> None:
    from cityos.services.city.plan_data import find_city
    from cityos.services.city.plan_page import prefilled

    values = {"city": "Bangkok", "example": True, **prefilled(find_city("Bangkok"))}
    with TestClient(app) as client:
        ok = client.post("/ui/api/pages/plan", json=values)
        assert ok.status_code == 200 and "Services by phase" in ok.json()["html"]
        r = client.post("/ui/api/pages/plan", json={**values, "flooding": 9})
        assert r.status_code == 400
        assert r.json()["detail"] == "answers.flooding: expected 1–5, got 9"
        assert r.json()["field"] == "flooding"
        r = client.post("/ui/api/pages/plan", json={**values, "city": "Atlantis"})
        assert r.status_code == 400 and r.json()["field"] == "city"
        assert r.json()["detail"].startswith("city: unknown city 'Atlantis'")

"""The operations dashboard in a real browser: Debian's Chromium driven by Playwright.

A served app (uvicorn in a thread) over a SQLite hub holding the sample district; the
browser opens each page at 1280×800 and at a phone's size, sees live data arrive when the
hub changes, opens an alert, and signs in with a role that sees less. Screenshots go to the
test's folder, and to docs/screenshots/ when ``CITYOS_UPDATE_SCREENSHOTS=1`` (what the docs
show comes from here). Outside CI the tests skip where Chromium is missing, saying how to
install it; in CI a missing browser fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.hub.core import Hub
from cityos.hub.model import now_iso
from cityos.hub.store.base import StoredContext
from cityos.security.policy import EXAMPLE_ROLES
from cityos.security.users import add_user
from cityos.twin.context import DISTRICT_TERMS
from cityos.twin.district import CONTEXT_URL, DISTRICT_CONTEXT, generate_district

CHROMIUM = os.environ.get("CITYOS_CHROMIUM", "/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "a-long-test-passphrase-42"

pytestmark = pytest.mark.slow


def _browser_or_skip() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (or set CITYOS_CHROMIUM)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """The app on a port in this process, and the hub behind it."""

    def __init__(self, tmp: Path, tenant: str, **settings: Any) -> None:
        import uvicorn

        from cityos.web.app import create_app

        env = {
            "CITYOS_DATABASE_URL": f"sqlite:///{tmp}/hub.db",
            "CITYOS_TOKEN_KEY_PATH": str(tmp / "token.pem"),
            "CITYOS_AUDIT_KEY_PATH": str(tmp / "audit.pem"),
            "CITYOS_MQTT_URL": "",
            "CITYOS_RATE_PER_S": "0",
            "CITYOS_NOTIFY_POLL_S": "0.1",
            "CITYOS_PAYMENTS_DATABASE_URL": f"sqlite:///{tmp}/ledger.db",
            "CITYOS_PAYMENTS_TICKET_KEY_PATH": str(tmp / "ticket.pem"),
            "CITYOS_PAYMENTS_PSEUDONYM_KEY_PATH": str(tmp / "pseudonym.key"),
            "CITYOS_PAYMENTS_PUBLISH_INTERVAL_S": "0",
            **{f"CITYOS_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.settings = Settings.load(env=env)
        self.hub = Hub(self.settings)
        # the district's @context, hosted as `cityos demo` hosts it (the roles' rules name it)
        self.hub.store.put_context(
            StoredContext("district", CONTEXT_URL, DISTRICT_CONTEXT, "hosted", now_iso())
        )
        self.client = HubClient(self.hub, context=DISTRICT_TERMS, tenant=tenant)
        self.port = _free_port()
        config = uvicorn.Config(
            create_app(self.settings, self.hub), port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _district(client: HubClient) -> list[dict[str, Any]]:
    entities = generate_district(seed=0)
    client.upsert(entities)
    return entities


def _alert(client: HubClient, n: int, severity: str, description: str) -> str:
    eid = f"urn:ngsi-ld:Alert:test-{n}"
    client.create(
        {
            "id": eid,
            "type": "Alert",
            "category": {"type": "Property", "value": "security"},
            "subCategory": {"type": "Property", "value": "crowdDetected"},
            "severity": {"type": "Property", "value": severity},
            "description": {"type": "Property", "value": description},
            "dateIssued": {"type": "Property", "value": "2026-12-07T08:00:00Z"},
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [104.921, 11.5697]},
            },
        }
    )
    return eid


@pytest.fixture
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page: Any, tmp: Path, name: str) -> None:
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # something was drawn
    if os.environ.get("CITYOS_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / f"{name}.png")


def _until(page: Any, js: str, timeout_s: float = 15.0) -> None:
    """Wait until ``js`` (an expression) is true in the page. Polled from here: the page's
    Content-Security-Policy forbids the in-page eval that ``wait_for_function`` uses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {js}"
        time.sleep(0.1)


def _metric(page: Any, label: str) -> str:
    """The value shown under a metric's label."""
    for metric in page.query_selector_all(".metric"):
        if metric.query_selector(".label").inner_text() == label:
            return metric.query_selector(".value").inner_text()
    raise AssertionError(f"no metric {label!r} on the page")


def _refreshes(page: Any) -> int:
    return int(page.get_attribute("#panels", "data-refreshed") or 0)


def test_every_page_opens_and_live_changes_appear(browser, tmp_path) -> None:
    with Served(tmp_path, tenant="") as served:
        entities = _district(served.client)
        page = browser.new_page(viewport=DESKTOP)
        page.goto(served.url + "/")
        page.wait_for_selector("svg.map")
        # every page a service brings is in the navigation, the overview first
        slugs = [a.get_attribute("data-slug") for a in page.query_selector_all("#nav a")]
        assert slugs[0] == "overview"
        for slug in ("traffic", "energy", "flows", "safety", "payments", "indicators"):
            assert slug in slugs
        # the map draws the district: roads, buildings, traffic sensors, bus stops
        layers = {f.get_attribute("data-layer") for f in page.query_selector_all(".feature")}
        assert {"road", "building", "traffic", "bus stop", "air"} <= layers
        roads = sum(1 for e in entities if e["type"] == "RoadSegment")
        assert len(page.query_selector_all('.feature[data-layer="road"]')) == roads
        page.wait_for_selector(".live.on")
        _shot(page, tmp_path, "overview")

        # live: a change in the hub reaches the open page without a reload
        before = _refreshes(page)
        assert _metric(page, "Open alerts") == "0"
        _alert(served.client, 1, "high", "Crowd above the zone's limit at the Central Market")
        _until(page, f"Number(document.querySelector('#panels').dataset.refreshed) > {before}")
        assert _metric(page, "Open alerts") == "1"

        # each page opens without an error, at a desktop's size
        for slug in slugs:
            page.click(f'#nav a[data-slug="{slug}"]')
            _until(
                page,
                f"document.querySelector('#page-title').textContent !== '' && "
                f"location.hash === '#/{slug}'",
            )
            page.wait_for_selector("#panels section")
            assert page.inner_text("#page-error") == ""
            if slug != "plan":  # its own test shoots it, with an answer under the form
                _shot(page, tmp_path, slug)


def test_an_alert_opens_to_its_details(browser, tmp_path) -> None:
    with Served(tmp_path, tenant="") as served:
        _district(served.client)
        eid = _alert(served.client, 2, "critical", "Person fallen on the platform")
        page = browser.new_page(viewport=DESKTOP)
        page.goto(served.url + "/#/safety")
        alert = page.wait_for_selector(f'details.alert[data-id="{eid}"]')
        assert not alert.get_attribute("open")
        alert.query_selector("summary").click()
        assert alert.get_attribute("open") is not None
        details = alert.inner_text()
        assert "Person fallen on the platform" in details and eid in details
        _shot(page, tmp_path, "alert-open")


def test_pages_fit_a_phone(browser, tmp_path) -> None:
    with Served(tmp_path, tenant="") as served:
        _district(served.client)
        page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        for slug in ("overview", "traffic", "safety"):
            page.goto(served.url + f"/#/{slug}")
            page.wait_for_selector("#panels section")
            # nothing wider than the screen: no sideways scrolling of the page itself
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{slug}: {width}px wide on a {PHONE['width']}px phone"
        page.goto(served.url + "/#/overview")
        page.wait_for_selector("svg.map")
        _shot(page, tmp_path, "overview-phone")


def test_sign_in_and_a_role_sees_only_its_grant(browser, tmp_path) -> None:
    # the example traffic engineer, its types named in the district's @context (the city's
    # data is in Smart Data Models terms)
    rules = {
        "@context": CONTEXT_URL,
        "roles": {"traffic-engineer": EXAMPLE_ROLES["roles"]["traffic-engineer"]},
    }
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    with Served(
        tmp_path,
        tenant="city",
        auth_required="true",
        detect="false",
        policy_path=tmp_path / "rules.json",
    ) as served:
        _district(served.client)
        _alert(served.client, 3, "high", "Tampering with a camera")
        add_user(served.hub.store, "lina", PASSWORD, tenants=["city"], roles=["traffic-engineer"])
        page = browser.new_page(viewport=DESKTOP)
        page.goto(served.url + "/")
        page.wait_for_selector("#login:not([hidden])")
        assert page.query_selector("svg.map") is None  # nothing before signing in
        page.fill("input[name=username]", "lina")
        page.fill("input[name=password]", "wrong password entirely")
        page.click("#login button")
        _until(page, "document.querySelector('#login-error').textContent !== ''")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login button")
        page.wait_for_selector("svg.map")
        assert "lina" in page.inner_text("#who-name")
        assert "traffic-engineer" in page.inner_text("#who-name")
        # the role reads traffic and roads, not buildings, meters, air or alerts
        note = page.inner_text(".role-limit")
        for hidden in ("Building", "ACMeasurement", "AirQualityObserved", "Alert"):
            assert hidden in note
        layers = {f.get_attribute("data-layer") for f in page.query_selector_all(".feature")}
        assert "road" in layers and "traffic" in layers
        assert not layers & {"building", "meter", "air", "alert"}
        _shot(page, tmp_path, "role-limited")
        page.click("#logout")
        page.wait_for_selector("#login:not([hidden])")


def test_the_basic_plan_page_answers_a_citys_survey(browser, tmp_path) -> None:
    from cityos.services.city.plan import make_plan
    from cityos.services.city.plan_data import example_answers

    with Served(tmp_path, tenant="") as served:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(served.url + "/#/plan")
        page.wait_for_selector("form.page-form")
        assert page.inner_text("#page-title") == "Basic plan"
        assert page.is_checked("#field-example")  # what is filled in is marked made up
        # choosing a city fills in its example answers
        bangkok = example_answers("bangkok")
        page.select_option("#field-city", "Bangkok")
        shown = page.input_value("#field-traffic_congestion")
        assert shown == str(bangkok["answers"]["traffic_congestion"])
        assert page.inner_text("#field-traffic_congestion + output") == shown
        assert page.input_value("#field-budget") == bangkok["answers"]["budget"]
        # change two answers, then ask for the plan
        page.fill("#field-energy_cost", "5")
        assert page.inner_text("#field-energy_cost + output") == "5"
        page.select_option("#field-top_priority", "energy")
        page.click("form.page-form button[type=submit]")
        _until(page, "document.querySelector('.form-result').dataset.answers === '1'")
        assert page.inner_text("#page-error") == ""
        # the ranked plan, as the planner ranks these answers: services by phase, then rank
        changed = {**bangkok["answers"], "energy_cost": 5, "top_priority": "energy"}
        plan = make_plan("Bangkok", {**bangkok, "answers": changed})
        expected = [s.info.title for s in sorted(plan.services, key=lambda s: (s.phase, s.rank))]
        titles = page.eval_on_selector_all(".form-result h2", "hs => hs.map(h => h.textContent)")
        assert titles[0].startswith("EXAMPLE") and "Services by phase" in titles
        table = next(
            t
            for t in page.query_selector_all(".form-result section.table")
            if t.query_selector("h2").inner_text() == "Services by phase"
        )
        rows = [
            r.query_selector_all("td")[3].inner_text() for r in table.query_selector_all("tbody tr")
        ]
        assert rows == expected and plan.order()[1] == "energy"
        assert page.query_selector(".form-result svg.chart rect.bar") is not None  # cost by phase
        # the answers stay as entered, and a live refresh leaves the page alone
        assert page.input_value("#field-energy_cost") == "5"
        page.evaluate("refresh(true)")
        assert page.query_selector(".form-result section") is not None
        assert page.input_value("#field-energy_cost") == "5"
        _shot(page, tmp_path, "plan")

        # a refused answer shows under the form, its field marked
        page.evaluate("document.querySelector('#field-city').options[0].value = 'Atlantis'")
        page.select_option("#field-city", index=0)
        page.click("form.page-form button[type=submit]")
        page.wait_for_selector(".form-result .form-error")
        assert "unknown city 'Atlantis'" in page.inner_text(".form-result .form-error")
        assert page.get_attribute("#field-city", "aria-invalid") == "true"

        # and it fits a phone
        page.set_viewport_size(PHONE)
        page.reload()
        page.wait_for_selector("form.page-form")
        page.click("form.page-form button[type=submit]")
        page.wait_for_selector(".form-result section")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"plan: {width}px wide on a {PHONE['width']}px phone"

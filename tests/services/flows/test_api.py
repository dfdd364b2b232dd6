"""The routes: the privacy report, the zones and the DP releases over HTTP."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.client import HubClient
from cityos.plug import ServiceContext
from cityos.services.flows import SERVICE, FlowsSettings, ZoneMap

from .conftest import KEY


@pytest.fixture
def http(client: HubClient, zones: ZoneMap) -> TestClient:
    app = Starlette(routes=SERVICE.routes())
    core = Settings(environ={"CITYOS_PRIVACY_KEY": KEY,
                             "CITYOS_PRIVACY_TIMEZONE": "Asia/Phnom_Penh"})  # fmt: skip
    app.state.services = {
        "flows": ServiceContext("flows", client, FlowsSettings(), core),
    }
    return TestClient(app)


def test_the_privacy_report_route(http: TestClient) -> None:
    r = http.get("/services/flows/privacy-report")
    assert r.status_code == 200
    assert r.json()["pseudonyms"]["keyConfigured"] is True


def test_the_zones_route(http: TestClient) -> None:
    r = http.get("/services/flows/zones")
    assert r.status_code == 200 and len(r.json()) == 8


def test_a_release_then_the_budget_refuses(http: TestClient) -> None:
    body = {"day": "2024-05-01", "epsilon": 0.75, "zones": ["riverside", "wat-phnom"]}
    r = http.post("/services/flows/releases/od", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["privacy"]["epsilon"] == pytest.approx(0.75) and len(r.json()["cells"]) == 4
    r = http.post("/services/flows/releases/od", json=body)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert "refused" in r.json()["detail"]
    report = http.get("/services/flows/privacy-report").json()
    [journeys] = [d for d in report["datasets"] if d["dataset"] == "transit-journeys"]
    assert journeys["released"][0]["epsilonSpent"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("od", {"day": "2024-05-01", "epsilon": 0}, "epsilon must be a number above 0"),
        ("od", {"day": "2024-05-01", "epsilon": 1, "zones": ["atlantis"]}, "unknown zone"),
        ("od", {"day": "yesterday", "epsilon": 1}, "is not a date"),
        ("od", {"epsilon": 1}, 'needs "day"'),
        ("od", {"day": "2024-05-01", "epsilon": 1, "colour": "red"}, "unknown member"),
        ("heatmap", {"day": "2024-05-01", "epsilon": 1}, "unknown release"),
    ],
)
def test_bad_release_requests_are_400(
    http: TestClient, path: str, body: dict, message: str
) -> None:
    r = http.post(f"/services/flows/releases/{path}", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["detail"]
    assert http.get("/services/flows/privacy-report").json()["datasets"] == [] or all(
        not d["released"] for d in http.get("/services/flows/privacy-report").json()["datasets"]
    )


def test_every_route_is_documented() -> None:
    paths = SERVICE.openapi_paths()
    assert set(paths) == {"/services/flows/privacy-report", "/services/flows/zones",
                          "/services/flows/releases/{kind}"}  # fmt: skip

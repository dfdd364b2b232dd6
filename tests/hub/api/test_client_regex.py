"""Clients' regular expressions (``q`` ``~=``, ``idPattern``) on RE2: refused patterns are a
400 naming why, never a 500, on every route that takes one and on both engines."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from cityos.hub.query import regex

BASE = "/ngsi-ld/v1"


def _seed(client: TestClient) -> None:
    for i, name in enumerate(["alpha", "beta", "aaa!"]):
        r = client.post(
            f"{BASE}/entities",
            json={
                "id": f"urn:ngsi-ld:Street:{i}",
                "type": "Street",
                "name": {"type": "Property", "value": name},
            },
        )
        assert r.status_code == 201, r.text


def test_re2_search_and_fullmatch_follow_python_semantics() -> None:
    assert regex.search("ph", "alpha") and not regex.search("^ph", "alpha")
    assert regex.fullmatch("urn:.*:1", "urn:ngsi-ld:T:1")
    assert not regex.fullmatch("urn:.*:1", "urn:ngsi-ld:T:12")
    # a pattern RE2 refuses never matches (it is refused at parse time on the routes)
    assert not regex.search(r"(a)\1", "aa")


def test_a_backtracking_pattern_answers_in_linear_time() -> None:
    # Python's re needs ~2^30 steps here; RE2 one pass (a hang would trip the test timeout)
    assert not regex.search("(a+)+$", "a" * 30 + "!")
    assert regex.search("(a+)+$", "a" * 30)


@pytest.mark.parametrize(
    "params",
    [
        {"type": "Street", "q": r"name~=(a)\1"},
        {"type": "Street", "q": "name~=(?=a)"},
        {"idPattern": r"urn:(x)\1"},
    ],
)
def test_refused_patterns_are_a_400_naming_re2(client: TestClient, params: dict) -> None:
    _seed(client)
    r = client.get(f"{BASE}/entities", params=params)
    assert r.status_code == 400, r.text
    assert "RE2" in r.json()["detail"]
    body = {"type": "Query", "entities": [{"type": "Street"}], "q": r"name~=(a)\1"}
    r = client.post(f"{BASE}/entityOperations/query", json=body)
    assert r.status_code == 400, r.text
    body = {"type": "Query", "entities": [{"type": "Street", "idPattern": r"(x)\1"}]}
    r = client.post(f"{BASE}/entityOperations/query", json=body)
    assert r.status_code == 400, r.text


def test_a_subscription_with_a_refused_pattern_is_not_stored(client: TestClient) -> None:
    for extra in ({"q": r"name~=(a)\1"}, {"entities": [{"type": "Street", "idPattern": "(?=x)"}]}):
        sub = {
            "type": "Subscription",
            "entities": [{"type": "Street"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
            **extra,
        }
        r = client.post(f"{BASE}/subscriptions", json=sub)
        assert r.status_code == 400, r.text
    assert client.get(f"{BASE}/subscriptions").json() == []


def test_portable_patterns_match_the_same_on_both_engines(client: TestClient) -> None:
    _seed(client)
    for q, want in [
        ("name~=^a", {"alpha", "aaa!"}),
        ("name~=(a+)+$", {"alpha", "beta"}),
        ("name!~=a$", {"aaa!"}),
    ]:
        r = client.get(f"{BASE}/entities", params={"type": "Street", "q": q})
        assert r.status_code == 200, r.text
        assert {e["name"]["value"] for e in r.json()} == want, q


def test_a_pattern_only_postgresql_refuses_is_a_400_there(
    client: TestClient, request: pytest.FixtureRequest
) -> None:
    """RE2 takes Python-style named groups; PostgreSQL's engine does not: a 400, not a 500."""
    _seed(client)
    r = client.get(f"{BASE}/entities", params={"type": "Street", "q": "name~=(?P<n>alp)"})
    if "postgresql" in request.node.callspec.id:
        assert r.status_code == 400, r.text
        assert "regular expression" in r.json()["detail"]
    else:
        assert r.status_code == 200, r.text
        assert [e["name"]["value"] for e in r.json()] == ["alpha"]

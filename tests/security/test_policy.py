"""The policy engine: a rule grants exactly what it names — never another type, tenant,
attribute, id or action — and views for query filtering agree with single decisions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityos.hub.ldcontext import core_context
from cityos.security.policy import ACTIONS, EXAMPLE_ROLES, Policy, PolicyError

CTX = core_context()
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def iri(term: str) -> str:
    return CTX.expand_term(term)


def policy(*rules: dict, role: str = "r") -> Policy:
    return Policy({"roles": {role: list(rules)}}, CTX)


def test_a_type_rule_never_grants_another_type() -> None:
    p = policy({"types": ["TrafficSignal"], "actions": ["read"]})
    assert p.allowed(["r"], "t", "read", etype=iri("TrafficSignal"))
    for other in ("TrafficFlowObserved", "TrafficSignalX", "Traffic", "trafficsignal", "*"):
        assert not p.allowed(["r"], "t", "read", etype=iri(other)), other
    assert not p.allowed(["r"], "t", "write", etype=iri("TrafficSignal"))
    assert not p.allowed(["other-role"], "t", "read", etype=iri("TrafficSignal"))


def test_id_patterns_are_literal_prefixes_not_path_templates() -> None:
    # keyMatch2 would read ':TrafficSignal' and ':*' as path parameters and match any URN
    p = policy({"ids": ["urn:ngsi-ld:TrafficSignal:*"], "actions": ["write"]})
    assert p.allowed(["r"], "t", "write", etype=iri("X"), eid="urn:ngsi-ld:TrafficSignal:42")
    for eid in (
        "urn:ngsi-ld:TrafficSignalBox:1",
        "urn:ngsi-ld:Streetlight:1",
        "urn:ngsi-ld:TrafficSignal",
        "urn:x:urn:ngsi-ld:TrafficSignal:1",
    ):
        assert not p.allowed(["r"], "t", "write", etype=iri("X"), eid=eid), eid
    with pytest.raises(PolicyError, match="only at the end"):
        policy({"ids": ["urn:*:TrafficSignal:1"], "actions": ["read"]})


def test_tenants_and_attributes_are_exact() -> None:
    p = policy({"tenants": ["phnompenh"], "attrs": ["pm25"], "actions": ["read"]})
    assert p.allowed(["r"], "phnompenh", "read", etype=iri("A"), attr=iri("pm25"))
    assert not p.allowed(["r"], "bangkok", "read", etype=iri("A"), attr=iri("pm25"))
    assert not p.allowed(["r"], "phnompenh", "read", etype=iri("A"), attr=iri("no2"))
    view = p.view(["r"], "phnompenh", "read")
    assert view.all_types and view.attrs_for([iri("A")]) == {iri("pm25")}
    assert p.view(["r"], "bangkok", "read").nothing


def test_own_data_only() -> None:
    p = Policy(EXAMPLE_ROLES, CTX)
    me = "urn:ngsi-ld:Person:dara"
    assert p.allowed(["resident"], "t", "read", etype=iri("Person"), eid=me, subject="dara")
    assert not p.allowed(["resident"], "t", "read", etype=iri("Person"), eid=me, subject="sokha")
    assert not p.allowed(["resident"], "t", "read", etype=iri("Person"), eid=me)
    # by-id rules do not open queries over the type
    assert p.view(["resident"], "t", "read").types == {iri("AirQualityObserved"), iri("GtfsStop")}


def test_example_roles() -> None:
    p = Policy(EXAMPLE_ROLES, CTX)
    flow = iri("TrafficFlowObserved")
    assert p.allowed(["traffic-engineer"], "t", "write", etype=flow)
    assert not p.allowed(["traffic-engineer"], "t", "write", etype=iri("ACMeasurement"))
    assert p.allowed(["researcher"], "t", "aggregate", etype=flow)
    assert not p.allowed(["researcher"], "t", "read", etype=flow)  # aggregates only
    assert all(p.allowed(["city-operator"], "any", a, etype=flow) for a in ACTIONS)
    assert not p.allowed(["transit-operator"], "t", "write", etype=flow)


def test_bad_rules_are_refused_with_the_reason(tmp_path) -> None:
    for doc, reason in (
        ({}, "roles"),
        ({"roles": {"r": [{"actions": ["fly"]}]}}, "unknown action"),
        ({"roles": {"r": [{"types": [], "actions": ["read"]}]}}, "non-empty"),
        ({"roles": {"r": [{"typo": 1, "actions": ["read"]}]}}, "unknown key"),
        ({"roles": {"r": [{"types": ["A"]}]}}, "required"),
    ):
        with pytest.raises(PolicyError, match=reason):
            Policy(doc, CTX)
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(PolicyError, match="p.json"):
        Policy.load(bad, CTX)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps(EXAMPLE_ROLES))
    assert "researcher" in Policy.load(good, CTX).roles


names = st.sampled_from(["A", "B", "TrafficSignal", "TrafficSignalX", "pm25", "no2"])


@given(
    rule_type=names,
    rule_attr=names,
    asked_type=names,
    asked_attr=names,
    action=st.sampled_from(ACTIONS),
)
def test_decisions_agree_with_the_view(rule_type, rule_attr, asked_type, asked_attr, action):
    p = policy({"types": [rule_type], "attrs": [rule_attr], "actions": ["read"]})
    decided = p.allowed(["r"], "t", action, etype=iri(asked_type), attr=iri(asked_attr))
    assert decided == (action == "read" and asked_type == rule_type and asked_attr == rule_attr)
    view = p.view(["r"], "t", action)
    in_view = iri(asked_type) in view.types and iri(asked_attr) in (
        view.attrs_for([iri(asked_type)]) or set()
    )
    assert in_view == decided


def test_a_rules_files_context_names_the_types_in_the_citys_terms(tmp_path) -> None:
    """The rules' ``@context`` (here the sample district's, hosted by the hub) expands their
    type names: a role over ``TrafficFlowObserved`` then reaches the district's Smart Data
    Models detectors, not only the core context's; one that cannot be resolved stops the
    server with the reason."""
    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.model import now_iso
    from cityos.hub.store.base import StoredContext
    from cityos.security.guard import load_policy
    from cityos.twin.context import CONTEXT_URL, DISTRICT_CONTEXT

    rules = tmp_path / "rules.json"
    doc = {
        "@context": CONTEXT_URL,
        "roles": {"eng": [{"types": ["TrafficFlowObserved"], "actions": ["read"]}]},
    }
    rules.write_text(json.dumps(doc))
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path}/h.db", policy_path=str(rules)))
    hub.store.put_context(
        StoredContext("district", CONTEXT_URL, DISTRICT_CONTEXT, "hosted", now_iso())
    )
    view = load_policy(hub).view(frozenset(["eng"]), "", "read")
    assert view.types == {
        "https://smartdatamodels.org/dataModel.Transportation/TrafficFlowObserved"
    }
    rules.write_text(json.dumps({**doc, "@context": "https://nowhere.invalid/ctx.jsonld"}))
    with pytest.raises(PolicyError, match="rules' @context cannot be resolved"):
        load_policy(hub)

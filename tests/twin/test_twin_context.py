"""The district @context: every term maps to an absolute IRI and works in a JSON-LD processor."""

from __future__ import annotations

from pyld import jsonld

from cityos.twin import CONTEXT_URL, DISTRICT_CONTEXT, generate_district
from cityos.twin.context import CORE_TERMS, DISTRICT_TERMS


def no_network(url, options=None):
    raise AssertionError(f"tried to fetch {url}")


def test_every_term_used_by_the_district_is_defined():
    used = set()
    for entity in generate_district():
        used.add(entity["type"])
        used.update(k for k in entity if k not in ("id", "type"))
    assert used - set(DISTRICT_TERMS) - CORE_TERMS == set()
    assert all(iri.startswith(("https://", "http://")) for iri in DISTRICT_TERMS.values())
    assert CONTEXT_URL.startswith("https://")
    assert DISTRICT_CONTEXT == {"@context": DISTRICT_TERMS}


def test_pyld_expands_district_terms_to_smart_data_models_iris():
    doc = {"@context": DISTRICT_CONTEXT["@context"], "@type": "TrafficFlowObserved", "intensity": 5}
    expanded = jsonld.expand(doc, {"documentLoader": no_network})
    assert expanded == [
        {
            "@type": ["https://smartdatamodels.org/dataModel.Transportation/TrafficFlowObserved"],
            "https://smartdatamodels.org/dataModel.Transportation/intensity": [{"@value": 5}],
        }
    ]

"""Declarations live in the hub and read back as they were written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cityos.hub.client import HubClient
from cityos.privacy import Dataset, LegalBasis, UnknownDataset, declare, declared
from cityos.privacy.datasets import dataset

from .conftest import TRIPS


def test_a_declaration_round_trips_through_the_hub(client: HubClient) -> None:
    counts = Dataset(
        name="counts",
        purpose="crowd safety",
        legal_basis="public-task",
        retention=timedelta(days=365),
        entity_type="CrowdFlowObserved",
        attributes=("peopleCount",),
    )
    declare(client, TRIPS, counts)
    assert declared(client) == [counts, TRIPS]
    assert dataset(client, "trips") == TRIPS
    assert counts.legal_basis is LegalBasis.PUBLIC_TASK and not counts.personal
    assert TRIPS.personal


def test_an_unknown_dataset_names_the_known_ones(client: HubClient) -> None:
    declare(client, TRIPS)
    with pytest.raises(UnknownDataset, match=r"no dataset 'nope' .*declared: trips"):
        dataset(client, "nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "lower-case"),
        ({"retention": timedelta(0)}, "retention"),
        ({"epsilon": 0.0}, "epsilon > 0"),
        ({"legal_basis": "because"}, "because"),
        ({"id_kind": ""}, "go together"),
    ],
)
def test_a_bad_declaration_is_refused(change: dict, message: str) -> None:
    fields = {**TRIPS.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        Dataset(**fields)

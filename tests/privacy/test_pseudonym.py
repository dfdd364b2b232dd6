"""Pseudonyms are stable within a period, unrelated across periods, and need a real key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cityos.privacy import MissingKey, PrivacySettings, Pseudonymiser

from .conftest import KEY

CARD = "4000 1234 5678 9010"


def test_stable_within_a_day_and_unrelated_across_days(pseudonymiser: Pseudonymiser) -> None:
    morning = datetime(2024, 5, 1, 1, 0, tzinfo=UTC)  # 08:00 in Phnom Penh
    evening = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # 19:00
    next_day = datetime(2024, 5, 2, 1, 0, tzinfo=UTC)
    p1 = pseudonymiser.pseudonym(CARD, "card", morning)
    assert p1 == pseudonymiser.pseudonym(CARD, "card", evening)
    assert p1 != pseudonymiser.pseudonym(CARD, "card", next_day)
    assert len(p1) == 32 and int(p1, 16) >= 0
    assert CARD.replace(" ", "") not in p1


def test_periods_change_at_local_midnight(pseudonymiser: Pseudonymiser) -> None:
    before = datetime(2024, 5, 1, 16, 59, 59, tzinfo=UTC)  # 23:59:59 local
    after = before + timedelta(seconds=1)  # 00:00 local, 2 May
    assert pseudonymiser.period_of(before).label == "2024-05-01"
    assert pseudonymiser.period_of(after).label == "2024-05-02"
    assert pseudonymiser.pseudonym(CARD, "card", before) != pseudonymiser.pseudonym(
        CARD, "card", after
    )
    period = pseudonymiser.period_of(after)
    assert period.start == after and period.end == after + timedelta(days=1)


def test_weekly_rotation_keeps_one_pseudonym_monday_to_sunday() -> None:
    weekly = Pseudonymiser(KEY, rotation="weekly", timezone="Asia/Bangkok")
    monday = datetime(2024, 4, 29, 3, tzinfo=UTC)
    sunday = datetime(2024, 5, 5, 16, tzinfo=UTC)  # 23:00 local Sunday
    next_monday = datetime(2024, 5, 5, 17, 30, tzinfo=UTC)  # 00:30 local Monday
    p = weekly.pseudonym(CARD, "card", monday)
    assert weekly.pseudonym(CARD, "card", sunday) == p
    assert weekly.pseudonym(CARD, "card", next_monday) != p
    assert weekly.period_of(monday).label == "2024-04-29"


def test_identifiers_are_normalised_per_kind(pseudonymiser: Pseudonymiser) -> None:
    at = datetime(2024, 5, 1, 3, tzinfo=UTC)
    macs = ["AA:BB:CC:00:11:22", "aa-bb-cc-00-11-22", "aabb.cc00.1122"]
    assert len({pseudonymiser.pseudonym(m, "mac", at) for m in macs}) == 1
    assert pseudonymiser.pseudonym("4000123456789010", "card", at) == pseudonymiser.pseudonym(
        CARD, "card", at
    )
    # the same characters as another kind of identifier give another pseudonym
    assert pseudonymiser.pseudonym("ABC123", "plate", at) != pseudonymiser.pseudonym(
        "ABC123", "card", at
    )


def test_other_secret_other_pseudonyms(pseudonymiser: Pseudonymiser) -> None:
    at = datetime(2024, 5, 1, 3, tzinfo=UTC)
    other = Pseudonymiser(KEY + "x", timezone="Asia/Phnom_Penh")
    assert other.pseudonym(CARD, "card", at) != pseudonymiser.pseudonym(CARD, "card", at)


def test_an_empty_or_short_key_is_refused_with_what_to_do() -> None:
    with pytest.raises(MissingKey, match="CITYOS_PRIVACY_KEY"):
        Pseudonymiser("")
    with pytest.raises(MissingKey, match="no pseudonymisation key.*CITYOS_PRIVACY_KEY"):
        Pseudonymiser.from_settings(PrivacySettings())
    with pytest.raises(MissingKey, match="too short"):
        Pseudonymiser.from_settings(PrivacySettings(key="secret"))
    assert Pseudonymiser.from_settings(PrivacySettings(key=KEY)).rotation == "daily"


def test_bad_input_never_echoes_the_identifier(pseudonymiser: Pseudonymiser) -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ValueError) as info:
        pseudonymiser.pseudonym("zz:secret-mac", "mac", at)
    assert "secret" not in str(info.value)
    with pytest.raises(ValueError, match="use card, mac, plate"):
        pseudonymiser.pseudonym(CARD, "passport", at)
    assert KEY not in repr(pseudonymiser)


def test_candidates_cover_every_period_in_the_window(pseudonymiser: Pseudonymiser) -> None:
    now = datetime(2024, 5, 31, 5, tzinfo=UTC)
    found = pseudonymiser.candidates(CARD, "card", now - timedelta(days=30), now)
    assert len(found) == 31 and len(set(found)) == 31
    assert pseudonymiser.pseudonym(CARD, "card", now - timedelta(days=12)) in found


def test_bad_settings_are_one_clear_line() -> None:
    with pytest.raises(ValueError, match="daily or weekly"):
        Pseudonymiser(KEY, rotation="hourly")
    with pytest.raises(ValueError, match="IANA"):
        Pseudonymiser(KEY, timezone="Mars/Olympus")


def test_it_is_standard_hmac_sha256(pseudonymiser: Pseudonymiser) -> None:
    """The primed inner/outer hashes compute exactly RFC 2104's HMAC with the period key."""
    import hashlib
    import hmac

    at = datetime(2024, 5, 1, 3, tzinfo=UTC)
    index = pseudonymiser.index_of(at)
    key = pseudonymiser._key(index)
    want = hmac.new(key, b"card\x004000123456789010", hashlib.sha256).hexdigest()[:32]
    assert pseudonymiser.pseudonym(CARD, "card", at) == want

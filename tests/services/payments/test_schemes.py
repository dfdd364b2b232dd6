"""The national schemes: detection, each scheme's rules (errors name the tag), published
sample codes, and decode(encode(x)) == x for generated inputs."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.services.payments import emvco
from cityos.services.payments.errors import PayloadError
from cityos.services.payments.schemes import (
    NAMES,
    Provider,
    decode,
    duitnow,
    khqr,
    paynow,
    promptpay,
    qris,
    qrph,
    vietqr,
)
from cityos.services.payments.schemes.examples import CREATED_MS, EXPIRES_MS, examples

STAMPS = {"created_ms": CREATED_MS, "expires_ms": EXPIRES_MS}


def refuses(call, tag: str, *words: str) -> None:
    """``call()`` (or decoding the payload ``call``) raises a PayloadError naming ``tag``."""
    with pytest.raises(PayloadError) as caught:
        call() if callable(call) else decode(call)
    assert caught.value.tag == tag, str(caught.value)
    assert str(caught.value).startswith(f"tag {tag}: ")
    for word in words:
        assert word in str(caught.value), str(caught.value)


def retagged(payload: str, **changes: object) -> str:
    """``payload`` with root tags changed (None removes), re-encoded with a fresh CRC."""
    tags = emvco.parse(payload)
    for tag, value in changes.items():
        tag = tag.removeprefix("t")
        if value is None:
            tags.pop(tag, None)
        else:
            tags[tag] = value
    return emvco.encode(tags)


# -- every scheme --------------------------------------------------------------------------


def test_each_example_reads_as_its_scheme() -> None:
    found = {scheme: decode(payload) for scheme, payload in examples().items()}
    assert sorted(found) == sorted(n for n in NAMES if n != "emvco")
    for scheme, decoded in found.items():
        assert decoded.scheme == scheme
        assert decoded.amount is not None and decoded.dynamic
        assert decoded.account
        json.dumps(decoded.as_dict())  # JSON-friendly as it stands
        assert decoded.as_dict()["amount"] == str(decoded.amount)


def test_as_dict_carries_the_fields() -> None:
    data = decode(examples()["khqr"]).as_dict()
    assert data["scheme"] == "khqr" and data["account"] == "cityos_example@demo"
    assert data["amount"] == "1500" and data["currency"] == "116" and data["country"] == "KH"
    assert data["tags"]["29"] == {"00": "cityos_example@demo"}
    assert data["additional"] == {"bill_number": "EXAMPLE-0001"}
    assert data["expires_ms"] == EXPIRES_MS


def test_amounts_are_written_as_each_scheme_writes_them() -> None:
    """Two decimals where the reference implementations write them (PromptPay, DuitNow,
    QR Ph, PayNow); whole numbers plain elsewhere (KHQR, QRIS, VietQR)."""
    assert emvco.parse(promptpay("0812345678", 15))["54"] == "15.00"
    assert emvco.parse(duitnow("588734", "M1", "K", "KL", 3))["54"] == "3.00"
    assert emvco.parse(qrph("RCBCPHMMXXX", "S", "Q", 20, account="1"))["54"] == "20.00"
    assert emvco.parse(paynow("91234567", "2.5"))["54"] == "2.50"
    assert emvco.parse(khqr("a@b", "S", currency="USD", amount=2, **STAMPS))["54"] == "2"
    assert emvco.parse(khqr("a@b", "S", currency="USD", amount="2.5", **STAMPS))["54"] == "2.50"
    assert emvco.parse(qris("ID1", "S", "J", "10110", "5411", "25000.00"))["54"] == "25000"
    assert emvco.parse(vietqr("970436", "1", 50000))["54"] == "50000"


def test_a_float_is_refused_as_an_amount() -> None:
    refuses(lambda: promptpay("0812345678", 12.5), "54", "Decimal")  # type: ignore[arg-type]
    refuses(lambda: promptpay("0812345678", "-1"), "54", "positive")
    refuses(lambda: promptpay("0812345678", "abc"), "54", "not a number")
    refuses(lambda: promptpay("0812345678", "1.234"), "54", "too many decimals")
    refuses(lambda: promptpay("0812345678", "1e30"), "54", "over 13 characters")
    refuses(lambda: promptpay("0812345678", "NaN"), "54", "positive")
    refuses(lambda: vietqr("970436", "1", 10**13), "54", "over 13 characters")
    refuses(lambda: promptpay("0812345678", "99999999999.99"), "54", "at most 13")


# -- KHQR ----------------------------------------------------------------------------------


def test_khqr_dynamic_in_riel() -> None:
    payload = khqr(
        "sokha@aclb", "Sokha Coffee", "Phnom Penh", "KHR", 4000,
        bill_number="INV-7", terminal="POS-1", created_ms=CREATED_MS, expires_ms=EXPIRES_MS,
    )  # fmt: skip
    decoded = decode(payload)
    assert (decoded.scheme, decoded.account, decoded.currency) == ("khqr", "sokha@aclb", "116")
    assert decoded.amount == 4000 and decoded.tags["54"] == "4000"
    assert decoded.tags["99"] == {"00": str(CREATED_MS), "01": str(EXPIRES_MS)}
    assert decoded.expires_ms == EXPIRES_MS and decoded.extra["created_ms"] == str(CREATED_MS)
    assert decoded.bill_number == "INV-7" and decoded.terminal == "POS-1"
    assert decoded.extra["type"] == "individual" and decoded.tags["52"] == "5999"


def test_khqr_merchant_in_dollars_with_khmer_name() -> None:
    payload = khqr(
        "citybus@abaa", "City Bus", "Phnom Penh", "USD", "0.50",
        merchant=True, merchant_id="BUS001", acquiring_bank="ABA Bank",
        created_ms=CREATED_MS, expires_ms=EXPIRES_MS,
        alt_language="km", alt_name="ឡានក្រុង", alt_city="ភ្នំពេញ",
    )  # fmt: skip
    decoded = decode(payload)
    assert decoded.tags["30"] == {"00": "citybus@abaa", "01": "BUS001", "02": "ABA Bank"}
    assert decoded.extra["merchant_id"] == "BUS001" and decoded.currency == "840"
    assert decoded.amount == Decimal("0.50") and decoded.tags["54"] == "0.50"
    assert decoded.tags["64"] == {"00": "km", "01": "ឡានក្រុង", "02": "ភ្នំពេញ"}


def test_khqr_static_has_no_timestamps_unless_asked() -> None:
    decoded = decode(khqr("sokha@aclb", "Sokha Coffee"))
    assert not decoded.dynamic and "99" not in decoded.tags and decoded.amount is None
    stamped = decode(khqr("sokha@aclb", "Sokha Coffee", created_ms=CREATED_MS))
    assert stamped.tags["99"] == {"00": str(CREATED_MS)} and stamped.expires_ms is None


def test_khqr_created_defaults_to_now() -> None:
    decoded = decode(khqr("a@b", "A", amount=100, expires_ms=9_999_999_999_999))
    assert abs(int(decoded.extra["created_ms"]) - datetime.now().timestamp() * 1000) < 60_000


@pytest.mark.parametrize(
    ("kwargs", "tag", "words"),
    [
        ({"account": "sokha"}, "29.00", "name@bank"),
        ({"account": "a@b@c"}, "29.00", "name@bank"),
        ({"account": "x" * 30 + "@bank"}, "29.00", "at most 32"),
        ({"currency": "EUR"}, "53", "KHR or USD"),
        ({"amount": "1500.50", "expires_ms": EXPIRES_MS}, "54", "whole units"),
        ({"amount": 1500}, "99.01", "expires_ms"),
        ({"merchant": True, "acquiring_bank": "ABA"}, "30.01", "merchant_id"),
        ({"merchant_name": "N" * 26}, "59", "at most 25"),
        ({"merchant_city": "C" * 16}, "60", "at most 15"),
        ({"bill_number": "B" * 26}, "62.01", "1 to 25"),
        ({"alt_name": "ឡានក្រុង"}, "64", "ISO 639"),
        ({"amount": 1, "created_ms": EXPIRES_MS, "expires_ms": CREATED_MS}, "99.01", "before"),
        ({"amount": 1, "expires_ms": 123}, "99.01", "13 digits"),
    ],
)
def test_khqr_refusals_name_the_tag(kwargs: dict, tag: str, words: str) -> None:
    args = {"account": "sokha@aclb", "merchant_name": "Sokha Coffee", "currency": "KHR"}
    refuses(lambda: khqr(**{**args, **kwargs}), tag, words)


def test_khqr_decode_rules() -> None:
    good = examples()["khqr"]
    refuses(retagged(good, t99={"00": str(CREATED_MS)}), "99.01", "expiry")
    refuses(retagged(good, t54=None), "54", "dynamic KHQR")
    refuses(retagged(good, t54="1500.5"), "54", "whole riel")
    refuses(retagged(good, t53="978"), "53", "116 or 840")
    refuses(retagged(good, t30={"00": "shop@aclb", "01": "M1"}, t29=None), "30.02", "missing")
    assert decode(retagged(good, t54="1500.00")).amount == 1500  # whole, written with cents


def test_khqr_needs_a_cambodian_code() -> None:
    """Without a GUID, a Bakong id is only KHQR in a KH code; elsewhere it is plain EMVCo."""
    other = retagged(examples()["khqr"], t58="TH", t53="840", t54="1.00")
    assert decode(other).scheme == "emvco"


# -- PromptPay -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "sub", "value"),
    [
        ("0812345678", "01", "0066812345678"),
        ("081-234-5678", "01", "0066812345678"),
        ("+66 81 234 5678", "01", "0066812345678"),
        ("0066812345678", "01", "0066812345678"),
        ("1-2345-67890-12-3", "02", "1234567890123"),
        ("123456789012345", "03", "123456789012345"),
    ],
)
def test_promptpay_targets(target: str, sub: str, value: str) -> None:
    decoded = decode(promptpay(target, "100.25"))
    assert decoded.tags["29"] == {"00": "A000000677010111", sub: value}
    assert decoded.account == value and decoded.amount == Decimal("100.25")
    assert (decoded.currency, decoded.country, decoded.scheme) == ("764", "TH", "promptpay")


def test_promptpay_static_without_names() -> None:
    decoded = decode(promptpay("0812345678"))
    assert not decoded.dynamic and decoded.amount is None and decoded.merchant_name is None
    assert "52" not in decoded.tags and "59" not in decoded.tags


def test_promptpay_bill_payment() -> None:
    payload = promptpay(
        "010553601234500", 250, bill=True, ref1="INV2026001", ref2="BUS",
        merchant_name="City Transit", merchant_city="Bangkok", mcc="4111",
    )  # fmt: skip
    decoded = decode(payload)
    assert decoded.tags["30"] == {
        "00": "A000000677010112", "01": "010553601234500", "02": "INV2026001", "03": "BUS",
    }  # fmt: skip
    assert decoded.account == "010553601234500"
    assert decoded.extra == {"type": "bill", "ref1": "INV2026001", "ref2": "BUS"}
    assert decoded.merchant_name == "City Transit" and decoded.mcc == "4111"


@pytest.mark.parametrize("target", ["12345", "08123456789", "abc", "+44 20 7946 0000"])
def test_promptpay_refuses_bad_targets(target: str) -> None:
    refuses(lambda: promptpay(target), "29", "Thai mobile")


def test_promptpay_decode_rules() -> None:
    good = promptpay("0812345678", 10)
    refuses(retagged(good, t53="840"), "53", "promptpay takes currency 764")
    refuses(retagged(good, t58="SG"), "58", "codes are for TH")
    refuses(retagged(good, t29={"00": "A000000677010111", "01": "066812345678"}), "29.01", "13")
    two = {"00": "A000000677010111", "01": "0066812345678", "02": "1234567890123"}
    refuses(retagged(good, t29=two), "29", "exactly one target")
    refuses(retagged(good, t30={"00": "A000000677010111", "01": "0066812345678"}, t29=None),
            "30", "tag 29")  # fmt: skip
    refuses(retagged(good, t29={"00": "A000000677010112", "01": "1"}), "29", "tag 30")
    bill = promptpay("010553601234500", 5, bill=True, ref1="R1")
    refuses(retagged(bill, t30={"00": "A000000677010112", "01": "010553601234500"}), "30.02")
    refuses(lambda: promptpay("010553601234500", bill=True, ref1="R 1"), "30.02", "reference")


# -- VietQR --------------------------------------------------------------------------------


def test_vietqr_account_and_card() -> None:
    decoded = decode(vietqr("970436", "0011001234567", 50000, purpose="Ve xe buyt"))
    assert decoded.tags["38"] == {
        "00": "A000000727", "01": {"00": "970436", "01": "0011001234567"}, "02": "QRIBFTTA",
    }  # fmt: skip
    assert decoded.account == "0011001234567" and decoded.extra["bin"] == "970436"
    assert decoded.additional["purpose"] == "Ve xe buyt" and decoded.amount == 50000
    card = decode(vietqr("970415", "9704151234567890", service="QRIBFTTC"))
    assert card.extra["service"] == "QRIBFTTC" and card.account == "9704151234567890"


@pytest.mark.parametrize(
    ("kwargs", "tag", "words"),
    [
        ({"bin": "97043"}, "38.01.00", "6 digits"),
        ({"service": "QRPUSH"}, "38.02", "QRIBFTTA"),
        ({"amount": "500.5"}, "54", "whole units"),
        ({"account": "0011-0012"}, "38.01.01", "letters or digits"),
        ({"account": "ABC123", "service": "QRIBFTTC"}, "38.01.01", "card number"),
        ({"account": "1" * 20}, "38.01.01", "at most 19"),
    ],
)
def test_vietqr_refusals(kwargs: dict, tag: str, words: str) -> None:
    args = {"bin": "970436", "account": "0011001234567"}
    refuses(lambda: vietqr(**{**args, **kwargs}), tag, words)


def test_vietqr_decode_rules() -> None:
    good = vietqr("970436", "0011001234567", 1000)
    refuses(retagged(good, t38={"00": "A000000727", "02": "QRIBFTTA"}), "38.01", "beneficiary")
    refuses(retagged(good, t38={"00": "A000000727", "01": "0006970436", "02": "QRIBFTTA"}),
            "38.01.01", "missing")  # fmt: skip
    moved = emvco.parse(good)
    moved["26"] = moved.pop("38")
    refuses(emvco.encode(moved), "26", "tag 38")
    refuses(retagged(good, t54="1000.00"), "54", "currency 704 has 0")


# -- QRIS ----------------------------------------------------------------------------------


def test_qris_with_providers() -> None:
    payload = qris(
        "ID1020012345678", "WARUNG KOPI", "JAKARTA", "10110", "5814", "25000",
        criteria="UKE",
        providers=[Provider("ID.CO.BANKX.WWW", pan="9360000812345678901", merchant_id="M123")],
        terminal="A01",
    )  # fmt: skip
    decoded = decode(payload)
    assert decoded.account == "ID1020012345678" and decoded.postal_code == "10110"
    assert decoded.tags["26"] == {
        "00": "ID.CO.BANKX.WWW", "01": "9360000812345678901", "02": "M123",
    }  # fmt: skip
    assert decoded.tags["51"] == {"00": "ID.CO.QRIS.WWW", "02": "ID1020012345678", "03": "UKE"}
    assert decoded.extra == {
        "nmid": "ID1020012345678", "criteria": "UKE", "providers": "26:ID.CO.BANKX.WWW",
    }  # fmt: skip


def test_qris_rules() -> None:
    good = examples()["qris"]
    refuses(retagged(good, t61=None), "61", "mandatory")
    refuses(retagged(good, t51={"00": "ID.CO.QRIS.WWW", "03": "UMI"}), "51.02", "missing")
    refuses(retagged(good, t51={"00": "ID.CO.QRIS.WWW", "02": "ID1", "03": "XYZ"}), "51.03")
    refuses(retagged(good, t53="840"), "53", "360")
    refuses(retagged(good, t26={"00": "ID.CO.X.WWW", "01": "93600A"}), "26.01", "PAN")
    refuses(lambda: qris("ID1", "W", "J", "10110", "5814", criteria="BIG"), "51.03", "UMI")


# -- DuitNow -------------------------------------------------------------------------------

# PayNet's published examples (its DuitNow QR developer documentation, as compiled in the
# public "DuitNow QR & EMV QR" research notes): payload format 02, and a SHA-256 in tag 82
PAYNET_STATIC = (
    "00020201021126410014A000000615000101065016640209123456789520499995303458540510.00"
    "5802MY5909QRCSDNBHD6005BANGI6304343F"
)
PAYNET_HASH = (
    "00020201021126410014A000000615000101065016640209123456789520499995303458540510.00"
    "5802MY5909QRCSDNBHD6005BANGI8264f879ac6266d8d6da081fc1c17160021119747b190615c21076b3"
    "fc0fce56c6eb6304B623"
)


def test_duitnow_reads_paynet_examples() -> None:
    decoded = decode(PAYNET_STATIC)
    assert (decoded.scheme, decoded.account, decoded.amount) == ("duitnow", "123456789", 10)
    assert decoded.extra == {"acquirer": "501664", "payload_format": "02"}
    assert decoded.merchant_name == "QRCSDNBHD" and decoded.currency == "458"
    hashed = decode(PAYNET_HASH)
    assert hashed.tags["82"].startswith("f879ac62")


def test_duitnow_writes_either_payload_format() -> None:
    assert duitnow("588734", "M1", "KEDAI", "KL").startswith("000202")
    one = decode(duitnow("588734", "M1", "KEDAI", "KL", "3.20", payload_format="01"))
    assert one.tags["00"] == "01" and one.amount == Decimal("3.20")
    refuses(lambda: duitnow("588734", "M1", "K", "KL", payload_format="03"), "00", "'01' or '02'")
    refuses(retagged(PAYNET_STATIC, t00="03"), "00", "01 or 02")


def test_duitnow_rules() -> None:
    refuses(lambda: duitnow("5887", "M1", "KEDAI", "KL"), "26.01", "6 digits")
    refuses(lambda: duitnow("588734", "M-1", "KEDAI", "KL"), "26.02", "merchant id")
    refuses(retagged(PAYNET_STATIC, t26={"00": "A0000006150001", "02": "1"}), "26.01", "missing")
    refuses(retagged(PAYNET_STATIC, t58="SG"), "58", "MY")
    decoded = decode(duitnow("588734", "M1", "KEDAI", "KL", descriptor="Bus", mobile="0123456789"))
    assert decoded.extra["descriptor"] == "Bus" and decoded.extra["mobile"] == "0123456789"


# -- QR Ph ---------------------------------------------------------------------------------

# PayMongo's API reference (QR transfer, "Example QR string with placeholder values"): an
# InstaPay P2P code with *** prompts in tag 62
PAYMONGO_P2P = (
    "00020101021127580012com.p2pqrpay0111SRCPPHM2XXX0208999644030411092661440425204601653"
    "036085802PH5905Miaaa6006Laguna6104402862570008102320230203***0403***050810232023070812"
    "3456780803***6304C369"
)
# a published P2M sample (a dynamic code through PayMaya): GUIDs in 62.00 as QR Ph does
P2M_SAMPLE = (
    "00020101021228500011ph.ppmi.p2m0111PAPHPHM1XXX0309102140529050331052047299530360854"
    "041.005802PH5903Rui6006Manila62440014com.paymaya.qr052228oYUr47CjKVCKh57wfb3s6304C116"
)


def test_qrph_reads_published_codes() -> None:
    p2p = decode(PAYMONGO_P2P)
    assert (p2p.scheme, p2p.account) == ("qrph", "09266144042")
    assert p2p.extra == {"kind": "p2p", "bic": "SRCPPHM2XXX"} and p2p.mcc == "6016"
    assert p2p.additional["mobile"] == "***" and p2p.postal_code == "4028"
    p2m = decode(P2M_SAMPLE)
    assert (p2m.account, p2m.extra["kind"], p2m.amount) == ("102140529", "p2m", 1)
    assert p2m.tags["62"]["00"] == "com.paymaya.qr" and p2m.reference == "28oYUr47CjKVCKh57wfb3s"


def test_qrph_writes_p2p_and_p2m() -> None:
    p2p = decode(qrph("GXCHPHM2XXX", "JUAN D.", "MAKATI", 50, account="09171234567"))
    assert p2p.tags["27"]["02"] == "99964403" and p2p.mcc == "6016"
    p2m = decode(qrph("RCBCPHMMXXX", "SARI STORE", "QUEZON CITY", merchant_id="M0001", mcc="5411"))
    assert p2m.tags["28"] == {"00": "ph.ppmi.p2m", "01": "RCBCPHMMXXX", "03": "M0001"}
    refuses(lambda: qrph("RCBCPHMMXXX", "S", "Q", merchant_id="M1"), "52", "merchant category")
    refuses(lambda: qrph("RCBCPHMMXXX", "S", "Q"), "27-28", "account")
    refuses(lambda: qrph("rcbc", "S", "Q", account="1"), "27.01", "BIC")
    refuses(retagged(PAYMONGO_P2P, t27={"00": "com.p2pqrpay", "01": "SRCPPHM2XXX"}), "27.04")


# -- PayNow --------------------------------------------------------------------------------


@pytest.mark.parametrize("mobile", ["91234567", "+65 9123 4567", "6591234567", "+6591234567"])
def test_paynow_mobile(mobile: str) -> None:
    decoded = decode(paynow(mobile, "4.50", reference="T123"))
    assert decoded.tags["26"] == {"00": "SG.PAYNOW", "01": "0", "02": "+6591234567", "03": "0"}
    assert decoded.account == "+6591234567" and decoded.extra["proxy_type"] == "mobile"
    assert decoded.reference == "T123" and decoded.merchant_city == "Singapore"


def test_paynow_uen_with_expiry() -> None:
    decoded = decode(paynow("201403121w", proxy_type="uen", expiry=date(2026, 12, 31)))
    assert decoded.account == "201403121W" and decoded.extra["editable"] == "1"
    assert decoded.extra["expiry"] == "20261231"
    end = datetime.fromisoformat("2026-12-31T23:59:59.999+08:00").timestamp() * 1000
    assert decoded.expires_ms == int(end)
    timed = decode(paynow("201403121W", 1, proxy_type="uen", expiry="20261231235900"))
    assert timed.expires_ms == int(
        datetime.fromisoformat("2026-12-31T23:59:00+08:00").timestamp() * 1000
    )


def test_paynow_rules() -> None:
    refuses(lambda: paynow("1234"), "26.02", "Singapore mobile")
    refuses(lambda: paynow("X", proxy_type="nric"), "26.01", "'mobile' or 'uen'")
    refuses(lambda: paynow("91234567", expiry="20261332"), "26.04", "real date")
    good = paynow("91234567", 1)
    template = {"00": "SG.PAYNOW", "01": "0", "02": "+6591234567", "03": "2"}
    refuses(retagged(good, t26=template), "26.03", "0 or 1")
    refuses(retagged(good, t26={**template, "01": "AB", "03": "1"}), "26.01", "one digit")


def test_sgqr_with_several_networks_reads_as_paynow() -> None:
    good = emvco.parse(paynow("91234567", 1))
    tags = {"00": "01", "01": "12", "26": {"00": "SG.COM.NETS", "01": "1234"}}
    tags |= {"27": good["26"], **{t: v for t, v in good.items() if t >= "52"}}
    decoded = decode(emvco.encode(tags))
    assert decoded.scheme == "paynow" and decoded.account == "+6591234567"


# -- decode(encode(x)) == x ----------------------------------------------------------------

_names = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=25
).filter(lambda s: s.strip() == s)
_cities = _names.map(lambda s: s[:15].strip() or "X")
_labels = st.none() | st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=25
)


def _amounts(decimals: int) -> st.SearchStrategy[Decimal | None]:
    step = Decimal(1).scaleb(-decimals)
    return st.none() | st.integers(1, 10**10 - 1).map(lambda n: n * step)


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"[a-z0-9_]{1,15}@[a-z]{2,8}", fullmatch=True),
    _names,
    _cities,
    st.sampled_from(["KHR", "USD"]),
    st.data(),
    _labels,
    st.booleans(),
)
def test_khqr_round_trip(account, name, city, currency, data, bill, merchant) -> None:
    amount = data.draw(_amounts(0 if currency == "KHR" else 2))
    kwargs = {"merchant_id": "M1", "acquiring_bank": "Bank"} if merchant else {}
    payload = khqr(
        account, name, city, currency, amount, merchant=merchant, bill_number=bill,
        created_ms=CREATED_MS, expires_ms=EXPIRES_MS if amount is not None else None, **kwargs,
    )  # fmt: skip
    decoded = decode(payload)
    assert (decoded.scheme, decoded.account, decoded.amount) == ("khqr", account, amount)
    assert (decoded.merchant_name, decoded.merchant_city) == (name, city)
    assert decoded.currency == {"KHR": "116", "USD": "840"}[currency]
    assert decoded.bill_number == bill and decoded.dynamic == (amount is not None)
    assert decoded.extra["type"] == ("merchant" if merchant else "individual")


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["mobile", "national_id", "ewallet"]),
    st.data(),
    _amounts(2),
    _labels,
)
def test_promptpay_round_trip(kind, data, amount, reference) -> None:
    digits = {"mobile": 9, "national_id": 13, "ewallet": 15}[kind]
    number = data.draw(st.from_regex(rf"[1-9][0-9]{{{digits - 1}}}", fullmatch=True))
    target = "0" + number if kind == "mobile" else number
    decoded = decode(promptpay(target, amount, reference=reference))
    expected = "0066" + number if kind == "mobile" else number
    assert (decoded.account, decoded.extra["target_type"]) == (expected, kind)
    assert decoded.amount == amount and decoded.reference == reference


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"97[0-9]{4}", fullmatch=True),
    st.from_regex(r"[0-9A-Z]{1,19}", fullmatch=True),
    _amounts(0),
    _labels,
)
def test_vietqr_round_trip(bank, account, amount, purpose) -> None:
    decoded = decode(vietqr(bank, account, amount, purpose=purpose))
    assert (decoded.account, decoded.extra["bin"], decoded.amount) == (account, bank, amount)
    assert decoded.additional.get("purpose") == purpose


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"ID[0-9]{13}", fullmatch=True),
    _names,
    _cities,
    st.from_regex(r"[0-9]{5}", fullmatch=True),
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    _amounts(2),
    st.sampled_from(["UMI", "UKE", "UME", "UBE", "URE"]),
)
def test_qris_round_trip(nmid, name, city, postal, mcc, amount, criteria) -> None:
    decoded = decode(qris(nmid, name, city, postal, mcc, amount, criteria=criteria))
    assert (decoded.account, decoded.amount, decoded.postal_code) == (nmid, amount, postal)
    assert (decoded.mcc, decoded.extra["criteria"], decoded.merchant_name) == (mcc, criteria, name)


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"[0-9]{6}", fullmatch=True),
    st.from_regex(r"[0-9A-Za-z]{1,28}", fullmatch=True),
    _names,
    _cities,
    _amounts(2),
    st.sampled_from(["01", "02"]),
)
def test_duitnow_round_trip(acquirer, merchant, name, city, amount, pfi) -> None:
    decoded = decode(duitnow(acquirer, merchant, name, city, amount, payload_format=pfi))
    assert (decoded.account, decoded.extra["acquirer"], decoded.amount) == (
        merchant,
        acquirer,
        amount,
    )
    assert decoded.tags["00"] == pfi and decoded.merchant_city == city


@settings(max_examples=60, deadline=None)
@given(
    st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}(XXX)?", fullmatch=True),
    _names,
    _cities,
    _amounts(2),
    st.booleans(),
    st.from_regex(r"[0-9]{10,16}", fullmatch=True),
)
def test_qrph_round_trip(bic, name, city, amount, p2p, number) -> None:
    if p2p:
        payload = qrph(bic, name, city, amount, account=number)
    else:
        payload = qrph(bic, name, city, amount, merchant_id=number, mcc="5411")
    decoded = decode(payload)
    assert (decoded.account, decoded.extra["bic"], decoded.amount) == (number, bic, amount)
    assert decoded.extra["kind"] == ("p2p" if p2p else "p2m")


@settings(max_examples=60, deadline=None)
@given(
    st.booleans(),
    st.data(),
    _amounts(2),
    st.none() | st.dates(date(2025, 1, 1), date(2099, 12, 31)),
    st.none() | st.booleans(),
)
def test_paynow_round_trip(mobile, data, amount, expiry, editable) -> None:
    if mobile:
        proxy = data.draw(st.from_regex(r"[89][0-9]{7}", fullmatch=True))
        expected = "+65" + proxy
    else:
        proxy = expected = data.draw(st.from_regex(r"[0-9]{8,9}[A-Z]", fullmatch=True))
    kind = "mobile" if mobile else "uen"
    decoded = decode(paynow(proxy, amount, proxy_type=kind, expiry=expiry, editable=editable))
    assert (decoded.account, decoded.extra["proxy_type"], decoded.amount) == (
        expected,
        kind,
        amount,
    )
    want = (amount is None) if editable is None else editable
    assert decoded.extra["editable"] == ("1" if want else "0")
    assert decoded.extra.get("expiry") == (None if expiry is None else expiry.strftime("%Y%m%d"))

"""Interop with independent implementations from PyPI, field by field (never string by
string): their payloads decoded by us, ours decoded (or checked) by them.

Test-only dependencies; each test skips, naming the package, when it is not installed:
bakong-khqr, konthaina-khqr, cambodia-bank (KHQR), promptpay, promptpay-qr (PromptPay),
napas-qr-python, vietqr-emvco (VietQR), qriskit (QRIS), pyPayNowSg (PayNow) and cemacqr (a
generic EMV QRCPS v1.1 reader and validator, used for every scheme). None does network I/O
for what is used here. No library on PyPI implements DuitNow or QR Ph; test_schemes.py reads
their published sample codes instead.
"""

from __future__ import annotations

from decimal import Decimal
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.services.payments import emvco
from cityos.services.payments.schemes import (
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


def lib(module: str, package: str) -> ModuleType:
    """Import ``module`` or skip, saying which package to install."""
    return pytest.importorskip(
        module, reason=f"{package} is not installed (pip install {package}; test-only)"
    )


# -- KHQR ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "static"),
    [(1500, "KHR", False), (2.5, "USD", False), (0, "USD", True)],
)
def test_bakong_khqr_payloads_decode(amount: float, currency: str, static: bool) -> None:
    bakong = lib("bakong_khqr", "bakong-khqr")
    payload = str(
        bakong.KHQR().create_qr(
            amount=amount, account_id="test_user@devb", merchant_name="Test Shop",
            merchant_city="Siem Reap", currency=currency, static=static, store_label="S1",
            bill_number="INV-1", terminal_label="T-9", phone_number="012345678",
        )
    )  # fmt: skip
    decoded = decode(payload)
    assert (decoded.scheme, decoded.account) == ("khqr", "test_user@devb")
    assert (decoded.merchant_name, decoded.merchant_city) == ("Test Shop", "Siem Reap")
    assert decoded.currency == {"KHR": "116", "USD": "840"}[currency]
    assert decoded.amount == (None if static else Decimal(str(amount)))
    assert decoded.additional == {
        "store": "S1", "mobile": "012345678", "bill_number": "INV-1", "terminal": "T-9",
    }  # fmt: skip
    assert (decoded.expires_ms is None) == static
    if not static:
        # a day later (the library reads the clock twice, so allow it a moment between)
        assert abs(decoded.expires_ms - int(decoded.extra["created_ms"]) - 86_400_000) < 1000


def test_bakong_khqr_reads_ours() -> None:
    bakong = lib("bakong_khqr", "bakong-khqr")
    from bakong_khqr.sdk.emv_parser import EMVParser

    payload = examples()["khqr"]
    root = EMVParser(payload).parsed
    assert EMVParser(root["29"]).parsed == {"00": "cityos_example@demo"}
    assert (root["53"], root["54"], root["58"]) == ("116", "1500", "KH")
    assert (root["59"], root["60"]) == ("CityOS Example Bus", "Phnom Penh")
    assert EMVParser(root["99"]).parsed == {"00": str(CREATED_MS), "01": str(EXPIRES_MS)}
    assert EMVParser(root["62"]).parsed == {"01": "EXAMPLE-0001"}
    # their CRC over our body gives our tag 63
    assert bakong.khqr.CRC().value(payload[:-8]) == payload[-8:]


def test_konthaina_khqr_both_ways() -> None:
    lib("konthaina_khqr", "konthaina-khqr")
    from konthaina_khqr.decode import decode as their_decode
    from konthaina_khqr.enums import MerchantType
    from konthaina_khqr.generator import KHQRGenerator
    from konthaina_khqr.verify import verify

    result = (
        KHQRGenerator(MerchantType.MERCHANT)
        .set_bakong_account_id("shop@aclb")
        .set_merchant_name("Noodle Shop")
        .set_merchant_id("M001")
        .set_acquiring_bank("ACLEDA")
        .set_currency("USD")
        .set_merchant_city("Battambang")
        .set_store_label("Main")
        .generate()
    )
    decoded = decode(result.qr)
    assert decoded.tags["30"] == {"00": "shop@aclb", "01": "M001", "02": "ACLEDA"}
    assert (decoded.account, decoded.extra["type"], decoded.currency) == (
        "shop@aclb",
        "merchant",
        "840",
    )
    assert decoded.additional == {"store": "Main"} and decoded.amount is None

    ours = khqr(
        "shop@aclb", "Noodle Shop", "Battambang", "USD", "3.75", merchant=True,
        merchant_id="M001", acquiring_bank="ACLEDA", created_ms=CREATED_MS, expires_ms=EXPIRES_MS,
    )  # fmt: skip
    assert verify(ours)
    flat = their_decode(ours)
    assert (flat["54"], flat["53"], flat["59"], flat["60"]) == (
        "3.75",
        "840",
        "Noodle Shop",
        "Battambang",
    )
    assert emvco.template(flat["30"], "30") == {"00": "shop@aclb", "01": "M001", "02": "ACLEDA"}


def test_cambodia_bank_payloads_decode() -> None:
    cambodia = lib("cambodia_bank", "cambodia-bank")
    builder = cambodia.khqr.KHQRBuilder(
        account_id="rith@wing", merchant_name="Rith", merchant_city="Kampot",
        amount=25000, currency="KHR", bill_number="B7",
    )  # fmt: skip
    decoded = decode(builder.build())
    assert (decoded.scheme, decoded.account, decoded.amount) == ("khqr", "rith@wing", 25000)
    assert decoded.merchant_city == "Kampot" and decoded.bill_number == "B7"
    assert decoded.expires_ms is not None


# -- PromptPay -----------------------------------------------------------------------------

TARGETS = [
    ("0812345678", "0066812345678", "mobile"),
    ("1234567890123", "1234567890123", "national_id"),
    ("012345678901234", "012345678901234", "ewallet"),
]


@pytest.mark.parametrize(("target", "account", "kind"), TARGETS)
@pytest.mark.parametrize("amount", [None, "10.50"])
def test_promptpay_libraries_payloads_decode(target, account, kind, amount) -> None:
    generated = [
        lib("promptpay.qrcode", "promptpay").generate_payload(target, float(amount or 0)),
        lib("promptpay_qr", "promptpay-qr").generate_payload(
            target, None if amount is None else float(amount)
        ),
    ]
    for payload in generated:
        decoded = decode(payload)
        assert (decoded.scheme, decoded.account, decoded.extra["target_type"]) == (
            "promptpay", account, kind,
        )  # fmt: skip
        assert decoded.amount == (None if amount is None else Decimal(amount))
        assert decoded.dynamic == (amount is not None)


@pytest.mark.parametrize(("target", "account", "kind"), TARGETS)
def test_promptpay_libraries_agree_on_ours(target, account, kind) -> None:
    theirs = lib("promptpay.qrcode", "promptpay")
    ours = promptpay(target, "99.75")
    assert theirs.checksum(ours[:-4]) == ours[-4:]
    # the same transfer written by them reads field for field as ours does
    mine, other = decode(ours), decode(theirs.generate_payload(target, 99.75))
    for field in ("scheme", "account", "amount", "currency", "country", "dynamic", "extra"):
        assert getattr(mine, field) == getattr(other, field), field


@settings(max_examples=40, deadline=None)
@given(
    st.from_regex(r"0[689][0-9]{8}", fullmatch=True),
    st.integers(1, 10**8).map(lambda n: Decimal(n) / 100),
)
def test_promptpay_lib_property(phone: str, amount: Decimal) -> None:
    payload = lib("promptpay.qrcode", "promptpay").generate_payload(phone, float(amount))
    decoded = decode(payload)
    assert decoded.account == "0066" + phone[1:] and decoded.amount == amount


# -- VietQR --------------------------------------------------------------------------------


def test_napas_qr_python_both_ways() -> None:
    qr_pay = lib("qr_pay", "napas-qr-python")
    theirs = qr_pay.QRPay(
        "970436", "0011001234567", transaction_amount=50000, purpose_of_transaction="ve xe",
        merchant_name="NGUYEN VAN A", merchant_city="HANOI", terminal_label="T1",
    ).code  # fmt: skip
    decoded = decode(theirs)
    assert (decoded.scheme, decoded.account, decoded.extra) == (
        "vietqr", "0011001234567", {"bin": "970436", "service": "QRIBFTTA"},
    )  # fmt: skip
    assert (decoded.amount, decoded.merchant_name, decoded.merchant_city) == (
        50000,
        "NGUYEN VAN A",
        "HANOI",
    )
    assert decoded.additional == {"terminal": "T1", "purpose": "ve xe"}

    ours = vietqr("970415", "9704151234567890", 120000, service="QRIBFTTC", purpose="HOA DON 7")
    read = qr_pay.QRPay.decode(ours)  # checks our CRC
    assert (read.bin_id, read.consumer_id, read.service_code) == (
        "970415",
        "9704151234567890",
        "QRIBFTTC",
    )
    assert (read.transaction_amount, read.transaction_currency, read.country_code) == (
        "120000",
        "704",
        "VN",
    )
    assert (read.purpose_of_transaction, read.point_of_initiation_method) == ("HOA DON 7", "12")
    assert read.global_uuid == "A000000727"


def test_napas_qr_python_static_code_without_amount() -> None:
    qr_pay = lib("qr_pay", "napas-qr-python")
    theirs = qr_pay.QRPay("970422", "0123456789", point_of_initiation_method="STATIC").code
    decoded = decode(theirs)
    assert (decoded.account, decoded.amount, decoded.dynamic) == ("0123456789", None, False)


def test_vietqr_emvco_both_ways() -> None:
    viet = lib("vietqr_emvco", "vietqr-emvco")
    theirs = viet.VietQRGenerator("970422", "0123456789").generate(
        amount=75000, memo="CITYOS", merchant_name="Tran Thi B"
    )
    decoded = decode(theirs)
    assert (decoded.account, decoded.extra["bin"], decoded.amount) == (
        "0123456789",
        "970422",
        75000,
    )
    assert (decoded.merchant_name, decoded.additional["purpose"], decoded.mcc) == (
        "TRAN THI B",
        "CITYOS",
        "0000",
    )

    ours = vietqr("970436", "0011001234567", 7000, purpose="VE XE")
    assert viet.VietQRParser.verify_checksum(ours)
    parsed = viet.VietQRParser.parse(ours)
    assert (parsed["bank_bin"], parsed["account_number"], parsed["service_code"]) == (
        "970436", "0011001234567", "QRIBFTTA",
    )  # fmt: skip
    assert (parsed["amount"], parsed["memo"], parsed["currency"]) == (7000.0, "VE XE", "704")


# -- QRIS ----------------------------------------------------------------------------------


def test_qriskit_both_ways() -> None:
    qriskit = lib("qriskit", "qriskit")
    built = qriskit.build(
        merchant_name="WARUNG KOPI", merchant_city="BANDUNG", mcc="5814", postal_code="40111",
        amount=25000,
        accounts=[
            qriskit.MerchantAccount.create(
                tag="26", guid="ID.CO.BANKX.WWW", pan="9360000812345678901",
                merchant_id="123456789012345", criteria="UMI",
            ),
            qriskit.MerchantAccount.national(nmid="ID1020012345678", criteria="UMI"),
        ],
        additional_data={"07": "T01"},
    ).dumps()  # fmt: skip
    decoded = decode(built)
    assert (decoded.scheme, decoded.account, decoded.amount) == ("qris", "ID1020012345678", 25000)
    assert (decoded.postal_code, decoded.mcc, decoded.terminal) == ("40111", "5814", "T01")
    assert decoded.tags["26"]["01"] == "9360000812345678901"

    ours = qris(
        "ID1020012345678", "WARUNG KOPI", "BANDUNG", "40111", "5814", "12500.50",
        providers=[Provider("ID.CO.BANKX.WWW", pan="9360000812345678901")], reference="R-1",
    )  # fmt: skip
    assert qriskit.validate(ours) == []  # no errors, no warnings
    read = qriskit.parse(ours, strict=True).to_dict()
    assert (read["nmid"], read["amount"], read["postal_code"]) == (
        "ID1020012345678",
        "12500.50",
        "40111",
    )
    assert (read["merchant_name"], read["merchant_city"], read["mcc"]) == (
        "WARUNG KOPI",
        "BANDUNG",
        "5814",
    )
    assert read["merchant_accounts"][0]["pan"] == "9360000812345678901"
    assert read["additional_data"] == {"reference_label": "R-1"}


def test_qriskit_accepts_every_static_and_dynamic_code_we_write() -> None:
    qriskit = lib("qriskit", "qriskit")
    for amount in (None, 1, "99999.99"):
        payload = qris("ID1020012345678", "TOKO", "JAKARTA", "10110", "5411", amount)
        assert qriskit.is_valid(payload)
        assert qriskit.parse(payload).amount == (None if amount is None else Decimal(str(amount)))


# -- PayNow --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy_type", "proxy", "account"),
    [(0, "+6591234567", "+6591234567"), (2, "201403121W", "201403121W")],
)
def test_pypaynowsg_payloads_decode(proxy_type: int, proxy: str, account: str) -> None:
    lib("pyPayNowSg", "pyPayNowSg")
    from pyPayNowSg import PayNowConfigFactory, PayNowSerializer

    info = PayNowConfigFactory.build_merchant_account_info(
        proxy_type=proxy_type, proxy_value=proxy, editable_txn=False, expiry_date="20261231"
    )
    extra = PayNowConfigFactory.build_additional_data("INV123")
    payload = PayNowSerializer.serialize("CITY SHOP", info, amount="12.30", additional_info=extra)
    decoded = decode(payload)
    assert (decoded.scheme, decoded.account, decoded.amount) == (
        "paynow",
        account,
        Decimal("12.30"),
    )
    assert decoded.extra == {
        "proxy_type": "mobile" if proxy_type == 0 else "uen", "editable": "0", "expiry": "20261231",
    }  # fmt: skip
    assert (decoded.bill_number, decoded.merchant_name, decoded.mcc) == (
        "INV123",
        "CITY SHOP",
        "0000",
    )
    assert decoded.expires_ms is not None


# -- a generic EMV QRCPS reader, for every scheme -------------------------------------------

# our payloads that cemacqr's plain EMVCo profile accepts as they are, and the rules it
# holds against the rest (PromptPay and VietQR codes in use leave out 52/59/60; DuitNow
# codes carry payload format 02)
EXPECTED_VIOLATIONS = {
    "khqr": set(),
    "promptpay": {"ID 52", "ID 59", "ID 60"},
    "vietqr": {"ID 52", "ID 59", "ID 60"},
    "qris": set(),
    "duitnow": {"ID 00"},
    "qrph": set(),
    "paynow": set(),
}


def _raw(value: emvco.Value) -> str:
    """A (nested) template back to its TLV text, as a one-level reader sees it."""
    if isinstance(value, str):
        return value
    return "".join(f"{sub}{len(_raw(v)):02d}{_raw(v)}" for sub, v in value.items())


@pytest.mark.parametrize("scheme", sorted(EXPECTED_VIOLATIONS))
def test_cemacqr_reads_every_scheme(scheme: str) -> None:
    cemacqr = lib("cemacqr", "cemacqr")
    payload = examples()[scheme]
    theirs, ours = cemacqr.parse_payload(payload), decode(payload)
    assert theirs.crc_ok
    assert theirs.merchant_name == ours.merchant_name and theirs.merchant_city == ours.merchant_city
    assert theirs.currency == ours.currency and theirs.country_code == ours.country
    assert theirs.amount_decimal == ours.amount and theirs.is_static == (not ours.dynamic)
    assert theirs.merchant_accounts == {
        tag: {sub: _raw(v) for sub, v in value.items()}
        for tag, value in ours.tags.items()
        if "02" <= tag <= "51" and isinstance(value, dict)
    }
    report = cemacqr.validate(theirs)
    found = {str(v).split(":")[0].split("] ")[1] for v in report.violations}
    assert found == EXPECTED_VIOLATIONS[scheme], str(report)


def test_cemacqr_accepts_full_codes_where_schemes_allow_them() -> None:
    cemacqr = lib("cemacqr", "cemacqr")
    full = [
        promptpay("0812345678", 5, merchant_name="SOMCHAI", merchant_city="BANGKOK", mcc="4111"),
        vietqr(
            "970436", "0011001234567", 5000, merchant_name="A", merchant_city="HANOI", mcc="4111"
        ),
        duitnow("588734", "M1", "KEDAI", "KUALA LUMPUR", 3, payload_format="01"),
        qrph("RCBCPHMMXXX", "SARI STORE", "QUEZON CITY", 20, merchant_id="M0001", mcc="5411"),
        paynow("91234567", "2.40", expiry="20301231"),
    ]
    for payload in full:
        report = cemacqr.validate(cemacqr.parse_payload(payload))
        assert report.ok, str(report)


def test_cemacqr_builds_codes_we_read() -> None:
    cemacqr = lib("cemacqr", "cemacqr")
    built = (
        cemacqr.MerchantQr()
        .merchant(name="BOULANGERIE AKWA", city="Douala", country="CM")
        .category("5411")
        .currency("950")
        .account("26", gui="com.example.cemac", merchant_pan="1234567890")
        .build()
    )
    decoded = decode(built.to_string())
    assert (decoded.scheme, decoded.merchant_name, decoded.currency) == (
        "emvco",
        "BOULANGERIE AKWA",
        "950",
    )
    assert decoded.tags["26"]["00"] == "com.example.cemac"

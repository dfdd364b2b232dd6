"""The EMVCo MPM codec: TLV, CRC, the shared rules and their errors (each names its tag)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.services.payments import emvco
from cityos.services.payments.emvco import crc16
from cityos.services.payments.errors import PayloadError, PaymentsError
from cityos.services.payments.schemes import decode

# The worked example of EMV QRCPS MPM v1.1 (as quoted by the PyPI cemacqr library): a Chinese
# merchant with its name and city in Chinese in tag 64, so lengths count characters while
# the CRC (A13A) runs over the UTF-8 bytes.
SPEC_EXAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678"
    "520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京"
    "540523.7253031565502016233030412340603***0708A60086670902ME"
    "91320016A0112233449988770708123456786304A13A"
)


def base(**changes: object) -> dict:
    """A plain valid payload's tags (no national scheme), with ``changes`` (None removes)."""
    tags: dict = {
        "00": "01",
        "01": "12",
        "26": {"00": "com.example.pay", "01": "ACCOUNT-1"},
        "52": "4111",
        "53": "840",
        "54": "12.50",
        "58": "US",
        "59": "EXAMPLE TRANSIT",
        "60": "SPRINGFIELD",
    }
    for tag, value in changes.items():
        tag = tag.removeprefix("t")
        if value is None:
            tags.pop(tag, None)
        else:
            tags[tag] = value
    return tags


def refuses(payload: str, tag: str | None, *words: str) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        decode(payload)
    assert caught.value.tag == tag, str(caught.value)
    if tag is not None:
        assert str(caught.value).startswith(f"tag {tag}: ")
    for word in words:
        assert word in str(caught.value)
    return caught.value


def resealed(body: str) -> str:
    """``body`` (everything before the CRC) with a correct CRC appended."""
    return body + "6304" + crc16(body + "6304")


def test_crc_is_ccitt_false() -> None:
    assert crc16("123456789") == "29B1"  # the catalogue check value of CRC-16/CCITT-FALSE
    assert crc16("") == "FFFF"


def test_the_spec_example_reads_field_by_field() -> None:
    decoded = decode(SPEC_EXAMPLE)
    assert decoded.scheme == "emvco"
    assert decoded.merchant_name == "BEST TRANSPORT"
    assert decoded.merchant_city == "BEIJING"
    assert decoded.currency == "156" and decoded.country == "CN"
    assert str(decoded.amount) == "23.72"
    assert decoded.dynamic is True  # 01 = 12
    assert decoded.tags["64"] == {"00": "ZH", "01": "最佳运输", "02": "北京"}
    assert decoded.tags["62"]["03"] == "1234" and decoded.additional["store"] == "1234"
    assert decoded.additional["customer"] == "***"
    assert decoded.tags["91"] == {"00": "A011223344998877", "07": "12345678"}
    assert decoded.tags["55"] == "01"
    assert decoded.extra == {"guids": "D15600000000,D15600000001"}


def test_parse_then_encode_gives_the_same_payload() -> None:
    assert emvco.encode(emvco.parse(SPEC_EXAMPLE)) == SPEC_EXAMPLE


def test_lengths_count_characters_and_the_crc_bytes() -> None:
    payload = emvco.encode(base(t64={"00": "km", "01": "ក្រុងភ្នំពេញ"}))
    assert "0112ក្រុងភ្នំពេញ" in payload  # 12 characters, 36 UTF-8 bytes
    assert payload[-4:] == crc16(payload[:-4])
    assert decode(payload).tags["64"]["01"] == "ក្រុងភ្នំពេញ"


def test_a_wrong_crc_names_tag_63_and_both_values() -> None:
    good = emvco.encode(base())
    bad = good[:-4] + ("0000" if good[-4:] != "0000" else "1111")
    error = refuses(bad, "63")
    assert (
        str(error) == f"tag 63: CRC is {good[-4:]}, payload gives {bad[-4:]} (altered or mistyped)"
    )
    assert isinstance(error, ValueError) and isinstance(error, PaymentsError)


def test_an_altered_amount_fails_the_crc() -> None:
    good = emvco.encode(base())
    refuses(good.replace("540512.50", "540519.50"), "63", "CRC is")


def test_a_lower_case_crc_and_surrounding_space_are_read() -> None:
    good = emvco.encode(base())
    assert decode("  " + good[:-4] + good[-4:].lower() + "\n").amount is not None


@pytest.mark.parametrize(
    ("body", "tag", "words"),
    [
        ("000201AB05hello", "AB", ("id is 2 digits",)),
        ("0002015920EXAMPLE", "59", ("declares length 20",)),
        ("00020159x1A", "59", ("length 'x1' is not 2 digits",)),
        ("0002015900", "59", ("length 00",)),
        ("000201010211010212", "01", ("appears twice",)),
        ("0102110002015204411153038405802US", "00", ("must come first",)),
    ],
)
def test_structure_errors_name_the_tag(body: str, tag: str, words: tuple[str, ...]) -> None:
    refuses(resealed(body), tag, *words)


def test_a_missing_crc_and_a_bad_crc_form() -> None:
    refuses("000201520441115303840", "63", "mandatory and missing")
    refuses("0002015204411163040XYZ", "63", "not 4 hex digits")
    refuses("0002016304ABCD5204411153038405802US", "63", "must be the last")


def test_a_truncated_template_names_the_sub_tag() -> None:
    body = emvco.encode(base(t62={"01": "BILL"}))[:-8].replace("62080104BILL", "62080109BILL")
    refuses(resealed(body), "62.01", "declares length 9")


def test_a_duplicate_sub_tag_is_refused() -> None:
    body = emvco.encode(base())[:-8]
    refuses(resealed(body + "62160104BILL0104BILL"), "62.01", "appears twice")


@pytest.mark.parametrize("tag", ["52", "53", "58", "59", "60"])
def test_each_mandatory_tag_is_named_when_missing(tag: str) -> None:
    refuses(emvco.encode(base(**{f"t{tag}": None})), tag, "mandatory and missing")


def test_a_payload_needs_a_merchant_account() -> None:
    refuses(emvco.encode(base(t26=None)), "02-51", "merchant account")


def test_a_merchant_template_starts_with_its_guid() -> None:
    refuses(emvco.encode(base(t26={"01": "ACCOUNT-1"})), "26.00", "GUID")


def test_card_network_tags_02_to_25_are_plain_values() -> None:
    decoded = decode(emvco.encode(base(t26=None, t04="5204123456789012")))
    assert decoded.tags["04"] == "5204123456789012" and decoded.scheme == "emvco"


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("+12", "not digits"),
        ("1e3", "not digits"),
        ("1,000", "not digits"),
        ("-5", "not digits"),
        (" 5", "not digits"),
        (".5", "not digits"),
        ("0", "zero"),
        ("0.00", "zero"),
        ("12.345", "3 decimals; currency 840 has 2"),
        ("12345678901234", "at most 13"),
    ],
)
def test_bad_amount_forms_name_tag_54(amount: str, words: str) -> None:
    refuses(emvco.encode(base(t54=amount)), "54", words)


@pytest.mark.parametrize("amount", ["98", "98.", "98.7", "98.73", "0000012.50", "9999999999.99"])
def test_amount_forms_emvco_allows(amount: str) -> None:
    decoded = decode(emvco.encode(base(t54=amount)))
    assert decoded.amount is not None and decoded.amount == emvco.amount(amount)


def test_a_zero_decimal_currency_refuses_decimals() -> None:
    refuses(emvco.encode(base(t53="392", t54="100.5")), "54", "currency 392 has 0")


@pytest.mark.parametrize(
    ("tags", "tag", "words"),
    [
        ({"t01": "13"}, "01", "11 (static) or 12 (dynamic)"),
        ({"t00": "02"}, "00", "payload format is '02'"),
        ({"t52": "41"}, "52", "not 4 digits"),
        ({"t53": "USD"}, "53", "ISO 4217 numeric"),
        ({"t58": "us"}, "58", "alpha-2"),
        ({"t59": "X" * 26}, "59", "26 characters; at most 25"),
        ({"t60": "Y" * 16}, "60", "at most 15"),
        ({"t61": "1" * 11}, "61", "at most 10"),
        ({"t55": "04"}, "55", "01 (prompt)"),
        ({"t55": "02"}, "56", "fixed fee"),
        ({"t55": "03"}, "57", "percentage"),
        ({"t56": "1.00"}, "56", "tip indicator 02"),
        ({"t55": "03", "t57": "100"}, "57", "0.01 to 99.99"),
        ({"t64": {"00": "ZH"}}, "64", "00 (language) and 01 (name)"),
        ({"t64": {"00": "ZHO", "01": "名"}}, "64.00", "ISO 639"),
    ],
)
def test_shared_rules_name_the_tag(tags: dict, tag: str, words: str) -> None:
    refuses(emvco.encode(base(**tags)), tag, words)


def test_tips_and_fees_that_agree_are_read() -> None:
    assert decode(emvco.encode(base(t55="02", t56="0.50"))).tags["56"] == "0.50"
    assert decode(emvco.encode(base(t55="03", t57="2.5"))).tags["57"] == "2.5"


def test_a_payload_over_512_characters_is_refused() -> None:
    long = {f"{tag}": {"00": "X" * 95} for tag in range(80, 86)}
    with pytest.raises(PayloadError, match="EMVCo allows at most 512"):
        emvco.encode(base(**{f"t{k}": v for k, v in long.items()}))
    body = emvco.encode(base())[:-8] + "".join(f"{t}05hello" for t in range(80, 100)) * 3
    error = refuses(body + "6304" + crc16(body + "6304"), None, "at most 512")
    assert str(error).startswith("payload is ")


def test_unreserved_tags_that_are_not_tlv_stay_text() -> None:
    decoded = decode(emvco.encode(base(t82="f879ac6266d8d6da")))
    assert decoded.tags["82"] == "f879ac6266d8d6da"


def test_encode_puts_00_first_and_recomputes_63() -> None:
    tags = base()
    tags.pop("00")
    tags["63"] = "0000"
    payload = emvco.encode(tags)
    assert payload.startswith("000201010212") and payload[-8:-4] == "6304"
    assert decode(payload).tags["26"]["01"] == "ACCOUNT-1"


@pytest.mark.parametrize(
    ("tags", "tag"),
    [
        ({"5": "x"}, "5"),
        ({"62": {"1A": "x"}}, "62.1A"),
        ({"59": ""}, "59"),
        ({"62": {"01": "x" * 100}}, "62.01"),
        ({"59": 12}, "59"),
    ],
)
def test_encode_errors_name_the_path(tags: dict, tag: str) -> None:
    with pytest.raises(PayloadError) as caught:
        emvco.encode(tags)
    assert caught.value.tag == tag


def test_not_text_and_empty_are_refused() -> None:
    with pytest.raises(PayloadError, match="must be text"):
        decode(b"000201")  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="empty"):
        decode("   ")
    with pytest.raises(PayloadError, match="UTF-8"):
        decode("000201\ud800")


# -- properties ---------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
_plain_tags = st.sampled_from([f"{t:02d}" for t in (*range(2, 26), *range(65, 80))])
_templates = st.sampled_from([f"{t:02d}" for t in (*range(26, 52), 62, 64, *range(80, 100))])
_subs = st.sampled_from([f"{t:02d}" for t in range(100)])


@st.composite
def tag_maps(draw: st.DrawFn) -> dict:
    """Random payload structures: plain tags, templates (1-4 sub-tags), and a value for
    every root tag, in random order (00 first; parse keeps the order it reads)."""
    tags: dict = {"00": "01"}
    for tag in draw(st.lists(_plain_tags, max_size=4, unique=True)):
        tags[tag] = draw(_text)
    for tag in draw(st.lists(_templates, max_size=4, unique=True)):
        tags[tag] = draw(st.dictionaries(_subs, _text, min_size=1, max_size=4))
    return tags


@settings(deadline=None)
@given(tag_maps())
def test_parse_inverts_encode(tags: dict) -> None:
    payload = emvco.encode(tags)
    assert emvco.parse(payload) == {**tags, "63": payload[-4:]}


@settings(deadline=None)
@given(tag_maps(), st.integers(min_value=0), st.characters(min_codepoint=33, max_codepoint=126))
def test_any_single_change_is_caught(tags: dict, where: int, char: str) -> None:
    """Change one character before the CRC and the CRC (or the structure) refuses it: a
    one-byte change is a burst the CRC always detects."""
    payload = emvco.encode(tags)
    at = where % (len(payload) - 4)
    if payload[at] == char:
        return
    changed = payload[:at] + char + payload[at + 1 :]
    with pytest.raises(PayloadError):
        emvco.parse(changed)

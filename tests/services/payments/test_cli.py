"""``cityos pay …``: each command's output, and its errors as one line, exit 2, no traceback."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from cityos.services.payments.cli import app
from cityos.services.payments.ledger import Ledger, Transfer

runner = CliRunner()


@pytest.fixture
def city(tmp_path, monkeypatch) -> str:
    """A configured CityOS in a temporary directory: its database URL."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/city.db"
    monkeypatch.setenv("CITYOS_DATABASE_URL", url)
    monkeypatch.setenv("CITYOS_PAYMENTS_TICKET_KEY_PATH", str(tmp_path / "t.pem"))
    monkeypatch.setenv("CITYOS_PAYMENTS_PSEUDONYM_KEY_PATH", str(tmp_path / "p.key"))
    return url


def _error(result) -> str:
    """The command failed as the CLI should: exit 2, one line on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def _khqr() -> str:
    result = runner.invoke(
        app, ["qr", "khqr", "--account", "cityos@aclb", "--name", "City Bus", "--city",
              "Phnom Penh"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_decode_prints_the_tags_and_the_scheme(city) -> None:
    payload = _khqr()
    result = runner.invoke(app, ["decode", payload, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["scheme"] == "khqr"
    assert out["tags"]["59"] == "City Bus"
    table = runner.invoke(app, ["decode", payload])
    assert table.exit_code == 0 and "tag 59" in table.stdout


def test_an_invalid_payload_is_one_line_naming_the_tag(city) -> None:
    payload = _khqr()
    line = _error(runner.invoke(app, ["decode", payload[:-4] + "0000", "--json"]))
    assert "tag 63" in line  # the CRC
    _error(runner.invoke(app, ["decode", "hello"]))


def test_qr_writes_an_image_and_refuses_what_the_scheme_does_not_take(city, tmp_path) -> None:
    out = tmp_path / "bus.png"
    result = runner.invoke(
        app, ["qr", "khqr", "--account", "cityos@aclb", "--name", "City Bus", "--amount",
              "1500", "--field", "expires_ms=4102444800000", "--out", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(result.stdout)["scheme"] == "khqr"
    assert "colour" in _error(
        runner.invoke(app, ["qr", "khqr", "--account", "a@b", "--field", "colour=red"])
    )
    assert "unknown scheme" in _error(runner.invoke(app, ["qr", "bitcoin"]))
    _error(runner.invoke(app, ["qr", "khqr", "--field", "nonsense"]))


def test_fare_prices_a_day_of_journeys(city, tmp_path) -> None:
    journeys = tmp_path / "day.json"
    journeys.write_text(json.dumps([
        {"rider": "a", "at": "2026-03-02T07:00:00+07:00", "stop": "wat-phnom", "product": "bus"},
        {"rider": "a", "at": "2026-03-02T07:30:00+07:00", "stop": "phsar-thmei", "product": "bus"},
        {"rider": "a", "at": "2026-03-02T12:00:00+07:00", "stop": "wat-phnom", "product": "bus"},
    ]))  # fmt: skip
    result = runner.invoke(app, ["fare", "--journeys", str(journeys), "--json"])
    assert result.exit_code == 0, result.output
    (day,) = json.loads(result.stdout)["days"]
    assert day["total_major"] == "3000.00"  # 1,500, a free transfer, 1,500
    assert "free" in day["charges"][1]["explanation"]
    table = runner.invoke(app, ["fare", "--journeys", str(journeys)])
    assert table.exit_code == 0 and "3,000 KHR" in table.stdout
    csv = tmp_path / "day.csv"
    csv.write_text("rider,at,stop,product,kind\na,2026-03-02T07:00:00+07:00,wat-phnom,bus,in\n")
    assert runner.invoke(app, ["fare", "--journeys", str(csv)]).exit_code == 0


def test_fare_errors_are_one_line(city, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    for text, part in (
        ("[{", "not JSON"),
        ('[{"at": "2026-03-02T07:00:00+07:00", "product": "bus"}]', "has no stop"),
        ('[{"at": "2026-03-02T07:00:00", "stop": "wat-phnom", "product": "bus"}]', "offset"),
        ('[{"at": "2026-03-02T07:00:00Z", "stop": "atlantis", "product": "bus"}]', "atlantis"),
    ):
        bad.write_text(text)
        assert part in _error(runner.invoke(app, ["fare", "--journeys", str(bad)]))
    assert "cannot read" in _error(runner.invoke(app, ["fare", "--journeys", "nope.json"]))


def _seed(url: str) -> None:
    ledger = Ledger.open(url)
    ledger.open_account("settlement:khqr", "KHR", kind="settlement", overdraft_limit=None)
    ledger.open_account("rider:a", "KHR")
    at = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Phnom_Penh")).timestamp()
    ledger.transfer(Transfer("settlement:khqr", "rider:a", 500000, "KHR", id="t1",
                             reference="KHQR-1", at=int(at * 1e6)))  # fmt: skip
    ledger.close()


def test_reconcile_exits_1_on_mismatches_and_0_when_the_day_matches(city, tmp_path) -> None:
    _seed(city)
    bank = tmp_path / "bank.csv"
    bank.write_text("date,reference,amount,currency\n2026-03-02,KHQR-1,5000.00,KHR\n")
    ok = runner.invoke(app, ["reconcile", "--day", "2026-03-02", "--file", str(bank), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["matched"] == 1
    bank.write_text("date,reference,amount,currency\n2026-03-02,KHQR-1,5000.01,KHR\n"
                    "2026-03-02,KHQR-2,10.00,KHR\n")  # fmt: skip
    differ = runner.invoke(app, ["reconcile", "--day", "2026-03-02", "--file", str(bank)])
    assert differ.exit_code == 1 and "2 mismatches" in differ.stdout
    as_json = runner.invoke(app, ["reconcile", "--day", "2026-03-02", "--file", str(bank),
                                  "--json"])  # fmt: skip
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["by_kind"] == {"amount_differs": 1, "missing_in_ledger": 1}
    bank.write_text("date,reference,amount,currency\n2026-03-02,KHQR-1,5000.0001,KHR\n")
    assert "line 2" in _error(
        runner.invoke(app, ["reconcile", "--day", "2026-03-02", "--file", str(bank)])
    )
    assert "--day" in _error(
        runner.invoke(app, ["reconcile", "--day", "yesterday", "--file", str(bank)])
    )


def test_ledger_balance_and_check(city) -> None:
    _seed(city)
    result = runner.invoke(app, ["ledger", "balance", "rider:a"])
    assert result.exit_code == 0 and "balance 5,000 KHR" in result.stdout
    assert (
        json.loads(runner.invoke(app, ["ledger", "balance", "rider:a", "--json"]).stdout)["balance"]
        == 500000
    )
    assert "no account" in _error(runner.invoke(app, ["ledger", "balance", "rider:nobody"]))
    check = runner.invoke(app, ["ledger", "check", "--json"])
    assert check.exit_code == 0 and json.loads(check.stdout)["ok"] is True
    assert "cannot open" in _error(
        runner.invoke(app, ["ledger", "balance", "x", "--database-url", "mysql://nope"])
    )


def test_a_bad_setting_is_one_line(city, monkeypatch) -> None:
    monkeypatch.setenv("CITYOS_PAYMENTS_TICKET_TTL_S", "soon")
    assert "ticket_ttl_s" in _error(runner.invoke(app, ["ledger", "check"]))


def test_ticket_prints_a_signed_payload(city) -> None:
    result = runner.invoke(app, ["ticket", "rider:a"])
    assert result.exit_code == 0 and result.stdout.startswith("CTK1.")

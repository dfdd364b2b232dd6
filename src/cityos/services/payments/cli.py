"""``cityos pay …``: read and make payment QR codes, price a day of journeys, reconcile a
day against the bank's file, look at the ledger. Errors are one line, exit 2."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="Payments: EMVCo QR codes (KHQR, PromptPay, VietQR ...), fares, the fare ledger.",
    no_args_is_help=True,
)
ledger_app = typer.Typer(help="The fare ledger: balances and its books.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
console = Console()
err = Console(stderr=True)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(help="The ledger's database (default: the configured one, as cityos serve)"),
]
TenantOpt = Annotated[str | None, typer.Option(help="Tenant (default: services.payments.tenant)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _fail(message: str) -> typer.Exit:
    err.print(Text(f"error: {message}", style="red"), soft_wrap=True)  # one line, as written
    return typer.Exit(2)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _settings() -> tuple[Any, Any]:
    """(the payments settings, CityOS's own), as ``cityos serve`` reads them."""
    from cityos.config import Settings

    from .runtime import settings_from

    try:
        core = Settings.load()
        return settings_from(core), core
    except ValueError as exc:
        raise _fail(_one_line(exc)) from None


def _ledger(database_url: str | None, tenant: str | None) -> Any:
    from .ledger import Ledger
    from .runtime import database_url as configured

    settings, core = _settings()
    url = database_url or configured(settings, core)
    try:
        return Ledger.open(url, tenant=settings.tenant if tenant is None else tenant,
                           schema=settings.database_schema or None)  # fmt: skip
    except Exception as exc:  # a bad URL, a server that is not there: one line
        raise _fail(f"cannot open the ledger's database: {_one_line(exc)}") from None


@app.command()
def decode(
    payload: Annotated[str, typer.Argument(help="The QR payload (the text a scanner reads)")],
    as_json: JsonOpt = False,
) -> None:
    """Read a payment QR payload: its scheme and every tag."""
    from .errors import PayloadError
    from .schemes import decode as read

    try:
        decoded = read(payload)
    except PayloadError as exc:
        raise _fail(_one_line(exc)) from None
    out = decoded.as_dict()
    if as_json:
        print(json.dumps(out, ensure_ascii=False))
        return
    table = Table(title=f"{decoded.scheme} payload")
    table.add_column("field")
    table.add_column("value")
    for key in ("scheme", "account", "amount", "currency", "merchant_name", "merchant_city",
                "country", "dynamic"):  # fmt: skip
        table.add_row(key, str(out.get(key)))
    for tag, value in _flat(out["tags"]):
        table.add_row(f"tag {tag}", value)
    console.print(table)


def _flat(tags: dict[str, Any], parent: str = "") -> list[tuple[str, str]]:
    rows = []
    for tag, value in tags.items():
        name = f"{parent}.{tag}" if parent else tag
        if isinstance(value, dict):
            rows += _flat(value, name)
        else:
            rows.append((name, str(value)))
    return rows


@app.command()
def qr(
    scheme: Annotated[str, typer.Argument(help="khqr, promptpay, vietqr, qris, duitnow, qrph, paynow")],
    account: Annotated[str | None, typer.Option(help="The payee: a Bakong id, a PromptPay id, a bank account ...")] = None,
    name: Annotated[str | None, typer.Option(help="Merchant name")] = None,
    city: Annotated[str | None, typer.Option(help="Merchant city")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency (KHR, USD, ...) where the scheme takes one")] = None,
    amount: Annotated[str | None, typer.Option(help="Amount, a decimal string (a dynamic QR)")] = None,
    field: Annotated[list[str] | None, typer.Option("--field", help="Another encoder argument, name=value (repeat)")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the image here (.png or .svg)")] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Make a scheme's payment QR: print its payload (and write its image)."""
    import inspect

    from .api import _encoder
    from .errors import PaymentsError
    from .schemes import decode as read

    try:
        encoder = _encoder(scheme)
    except Exception as exc:
        raise _fail(getattr(exc, "detail", str(exc))) from None
    params = inspect.signature(encoder).parameters
    given: dict[str, Any] = {}
    if account is not None:
        given["target" if "target" in params and "account" not in params else "account"] = account
    for key, value in (("merchant_name", name), ("merchant_city", city), ("currency", currency),
                       ("amount", amount)):  # fmt: skip
        if value is not None:
            given[key] = value
    for item in field or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"--field {item!r}: write name=value")
        given[key.strip()] = value
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise _fail(f"the {scheme} encoder takes no {', '.join(unknown)}; it takes "
                    f"{', '.join(params)}")  # fmt: skip
    try:
        payload = encoder(**given)
        decoded = read(payload)
        if out is not None:
            from . import qr as images

            if out.suffix.lower() == ".svg":
                out.write_text(images.svg(payload) + "\n", encoding="utf-8")
            elif out.suffix.lower() == ".png":
                images.png(payload, out)
            else:
                raise _fail(f"--out {out}: name a .png or .svg file")
    except (PaymentsError, TypeError) as exc:
        raise _fail(_one_line(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror}") from None
    if as_json:
        print(json.dumps({"scheme": decoded.scheme, "payload": payload,
                          "image": str(out) if out else None}))  # fmt: skip
    else:
        print(payload)


def _read_taps(path: Path) -> list[Any]:
    """Taps from JSON (a list, or ``{"taps": [...]}``) or CSV (rider, at, stop, product,
    kind, concession)."""
    from .fares import Tap

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise _fail(f"{path} is not JSON: {exc}") from None
        rows = doc.get("taps") if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise _fail(f"{path}: give a list of taps, or an object with taps")
    taps = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise _fail(f"{path}: tap {n} is not an object")
        try:
            when = datetime.fromisoformat(str(row["at"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError(f"at {row['at']!r} needs an offset (Z or +07:00)")
            kind = row.get("kind") or "in"
            if kind not in ("in", "out"):
                raise ValueError(f"kind {kind!r} is neither in nor out")
            taps.append(Tap(str(row.get("rider") or "rider"), int(when.timestamp()),
                            str(row["stop"]), str(row["product"]), kind,
                            str(row.get("concession") or "")))  # fmt: skip
        except KeyError as exc:
            raise _fail(f"{path}: tap {n} has no {exc.args[0]}") from None
        except ValueError as exc:
            raise _fail(f"{path}: tap {n}: {_one_line(exc)}") from None
    return taps


@app.command()
def fare(
    journeys: Annotated[Path, typer.Option(help="Taps: JSON (a list) or CSV (rider, at, stop, product, kind, concession)")],
    tariff: Annotated[Path | None, typer.Option(help="Tariff JSON (default: the configured one)")] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Price a day of journeys: each charge, and why that amount."""
    from .errors import PaymentsError
    from .fares import load_tariff, price_taps
    from .money import show, to_major

    settings, _ = _settings()
    try:
        chosen = load_tariff(tariff or settings.tariff or None)
        days = price_taps(chosen, _read_taps(journeys))
    except PaymentsError as exc:
        raise _fail(_one_line(exc)) from None
    tz = chosen.zone_info()
    if as_json:
        print(json.dumps({"currency": chosen.currency, "days": [
            {"rider": d.rider, "date": d.date, "total": d.total,
             "total_major": to_major(d.total, chosen.currency),
             "charges": [c.as_dict(chosen.currency, tz) for c in d.charges]} for d in days
        ]}, ensure_ascii=False))  # fmt: skip
        return
    for d in days:
        table = Table(title=f"{d.rider}, {d.date}: {show(d.total, chosen.currency)}")
        for col in ("time", "product", "from", "to", "charged", "why"):
            table.add_column(col)
        for c in d.charges:
            table.add_row(
                datetime.fromtimestamp(c.start, tz).strftime("%H:%M"), c.product, c.from_stop,
                c.to_stop or "-", show(c.amount, chosen.currency), c.explain(chosen.currency),
            )  # fmt: skip
        console.print(table)


@app.command()
def reconcile(
    day: Annotated[str, typer.Option(help="The local day, YYYY-MM-DD")],
    file: Annotated[Path, typer.Option(help="The bank's settlement CSV (date, reference, amount, currency, ...)")],
    account: Annotated[list[str] | None, typer.Option(help="Settlement account(s) the file covers (default: all but cash:)")] = None,
    database_url: DatabaseOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Compare one day of the ledger with the bank's settlement file; exit 1 if they differ."""
    from .errors import PaymentsError
    from .fares import load_tariff
    from .money import to_major
    from .reconcile import read_settlement
    from .reconcile import reconcile as compare

    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise _fail(f"--day {day!r} is not YYYY-MM-DD") from None
    settings, _ = _settings()
    try:
        rows = read_settlement(file)
        timezone = load_tariff(settings.tariff or None).timezone
    except PaymentsError as exc:
        raise _fail(_one_line(exc)) from None
    ledger = _ledger(database_url, tenant)
    try:
        report = compare(ledger, when, rows, accounts=account or None, timezone=timezone)
    finally:
        ledger.close()
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        table = Table(title=f"Reconciliation of {report.day}: {report.matched} matched, "
                      f"{len(report.mismatches)} mismatches")  # fmt: skip
        for col in ("kind", "reference", "file", "ledger", "line", "transfer", "detail"):
            table.add_column(col)
        for m in report.mismatches:
            table.add_row(
                m.kind, m.reference,
                "-" if m.file_amount is None else to_major(m.file_amount, m.currency),
                "-" if m.ledger_amount is None else to_major(m.ledger_amount, m.currency),
                str(m.line or "-"), m.transfer_id or "-", m.detail,
            )  # fmt: skip
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def ticket(
    account: Annotated[str, typer.Argument(help="The wallet's account id")],
    concession: Annotated[str, typer.Option(help="A concession the ticket carries")] = "",
    out: Annotated[Path | None, typer.Option(help="Write the QR image here (.png or .svg)")] = None,
) -> None:
    """Issue a signed, short-lived ticket for a wallet (with the configured key)."""
    from .errors import PaymentsError
    from .tickets import TicketSigner, load_or_create_key

    settings, _ = _settings()
    try:
        signer = TicketSigner(load_or_create_key(settings.ticket_key_path),
                              ttl_s=settings.ticket_ttl_s)  # fmt: skip
        payload = signer.issue(account, concession=concession, tenant=settings.tenant)
        if out is not None:
            from . import qr as images

            if out.suffix.lower() == ".svg":
                out.write_text(images.svg(payload, check=False) + "\n", encoding="utf-8")
            else:
                images.png(payload, out, check=False)
    except PaymentsError as exc:
        raise _fail(_one_line(exc)) from None
    except OSError as exc:
        raise _fail(f"{exc.filename}: {exc.strerror}") from None
    print(payload)


@ledger_app.command()
def balance(
    account: Annotated[str, typer.Argument(help="The account id (rider:..., operator:...)")],
    database_url: DatabaseOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An account's balance, what it may still spend, and what is reserved."""
    from .errors import PaymentsError
    from .money import show

    ledger = _ledger(database_url, tenant)
    try:
        found = ledger.account(account)
    except PaymentsError as exc:
        raise _fail(_one_line(exc)) from None
    finally:
        ledger.close()
    if as_json:
        print(json.dumps(found.as_dict()))
        return
    console.print(
        f"{found.id} ({found.kind}): balance {show(found.balance, found.currency)}, "
        f"available {show(found.available, found.currency)}, "
        f"reserved {show(found.debits_pending, found.currency)}",
        soft_wrap=True,
        markup=False,
    )


@ledger_app.command()
def check(
    database_url: DatabaseOpt = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the books: every currency sums to zero, every account is the sum of its
    transfers, none past its overdraft limit. Exit 1 when one does not hold."""
    ledger = _ledger(database_url, tenant)
    try:
        problems = ledger.check()
    finally:
        ledger.close()
    if as_json:
        print(json.dumps({"ok": not problems, "problems": problems}))
    elif problems:
        for p in problems:
            err.print(p, markup=False, soft_wrap=True)
    else:
        console.print("the books balance", markup=False)
    if problems:
        raise typer.Exit(1)

"""The payments service's HTTP routes, under ``/services/payments/``.

* ``POST /qr`` — a scheme's payment QR: the payload, and its image (JSON with the SVG and a
  base64 PNG; ``?format=png`` or ``svg`` for the image alone);
* ``POST /decode`` — a QR payload read: its scheme and tags (400 naming the tag at fault);
* ``POST /fares/quote`` — what a day of taps costs, each charge explained; writes nothing;
* ``POST /taps`` — a tap at a reader, paid from a ticket, a wallet, cash or a scheme's QR;
* ``POST /tickets`` — a signed, short-lived ticket QR for a wallet;
* ``POST /accounts``, ``GET /accounts/{account_id}`` — ledger accounts and balances;
* ``POST /transfers`` (one, or a batch: ``atomic`` all or nothing, or per item),
  ``GET /transfers/{transfer_id}``, ``POST /transfers/{transfer_id}/post`` and ``/void``
  (the second phase of a pending transfer).

Errors are problem details (RFC 7807) with the NGSI-LD error types and a ``code`` naming
the reason for programs (``insufficient_funds``, ``idempotency_conflict``,
``ticket_replayed``...); bad input is refused before anything is written, and what the
ledger refuses rolls back whole.

Who may do what (with ``CITYOS_AUTH_REQUIRED``): the door lets a POST through only to a
role that may ``write`` in the tenant, a GET to one that may ``read``. The ledger's data is
then governed like an entity type, ``FareLedger``: moving money (taps, tickets, accounts,
transfers) needs ``write`` on it, reading balances and transfers ``read`` — a rule such as
``{"types": ["FareLedger"], "actions": ["read", "write"]}`` in the city's rules file; a
role that may write other types only is refused (403) with nothing written. ``qr``,
``decode`` and ``fares/quote`` touch no ledger: the door's check is theirs. Each tenant
(``NGSILD-Tenant``) has a ledger of its own.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityos.hub.api.common import endpoint, json_response, read_body, tenant_of
from cityos.hub.errors import (
    AlreadyExists,
    BadRequestData,
    Forbidden,
    NgsiLdError,
    OperationNotSupported,
    ResourceNotFound,
)

from .errors import PayloadError, PaymentsError
from .fares import Tap, price_taps
from .ledger import Transfer
from .money import MAX_AMOUNT, MoneyError, to_major, to_minor
from .money import currency as check_currency
from .runtime import Payments, payments_of
from .taps import TapRequest

BASE = "/services/payments"
LEDGER_TYPE = "FareLedger"  # what the roles' rules name to grant the ledger
MAX_TAPS = 10_000  # a quote's taps
MAX_BATCH = 10_000  # a batch's transfers
LATEST = 4_102_444_800  # 2100-01-01: no tap or journey is later


# -- plumbing ----------------------------------------------------------------------------
def _payments(request: Request) -> Payments:
    return payments_of(request.app.state.services["payments"])


def _tenant(request: Request) -> str:
    return tenant_of(request, read=False)  # a ledger needs no entity in the hub


def require(request: Request, action: str) -> None:
    """403 unless the caller's rules grant ``action`` on ``FareLedger`` in its tenant (no
    caller, as with authentication off: allowed). Asked through the same rules the hub
    applies to entity types (:func:`cityos.security.scope.listed`)."""
    from cityos.security.scope import listed

    client = request.app.state.services["payments"].client
    if not listed(client.ctx.expand_term(LEDGER_TYPE), None, action):
        raise Forbidden(f"your roles may not {action} the fare ledger ({LEDGER_TYPE})")


def problem_of(exc: PaymentsError) -> NgsiLdError:
    """The NGSI-LD error a payments error is answered with."""
    extra: dict[str, Any] = {}
    code = getattr(exc, "code", None)
    if code:
        extra["code"] = code
    if isinstance(exc, PayloadError):
        extra["code"] = "bad_payload"
        if exc.tag:
            extra["tag"] = exc.tag
    if results := getattr(exc, "results", None):
        extra["results"] = [r.as_dict() for r in results]
    status = getattr(exc, "status", 400)
    if status == 404:
        return ResourceNotFound(str(exc), **extra)
    if status == 409:
        return AlreadyExists(str(exc), **extra)
    if status == 422:
        return OperationNotSupported(str(exc), **extra)
    return BadRequestData(str(exc), **extra)


def payments_endpoint(fn: Callable[[Request], Awaitable[Response]]) -> Any:
    """``endpoint`` (problem details), with the payments errors mapped."""

    @wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except (PaymentsError, MoneyError) as exc:
            if isinstance(exc, MoneyError):
                raise BadRequestData(str(exc), code="bad_amount") from None
            raise problem_of(exc) from None

    return endpoint(wrapper)


async def _object(request: Request) -> dict[str, Any]:
    body = await read_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object")
    return body


def _str(body: dict[str, Any], key: str, *, required: bool = True, most: int = 256) -> Any:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequestData(f"{key} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > most:
        raise BadRequestData(f"{key} must be a non-empty string of at most {most} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequestData(f"{key} holds a control character")
    return value


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequestData(f"{key} must be an integer from {low} to {high}")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadRequestData(f"{key} must be true or false")
    return value


def _seconds(value: Any, key: str) -> int:
    """An ISO 8601 date-time with its offset -> seconds since the epoch."""
    if not isinstance(value, str):
        raise BadRequestData(f"{key} must be an ISO 8601 date-time with an offset")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestData(f"{key} {value!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise BadRequestData(f"{key} {value!r} needs an offset (Z or +07:00)")
    try:
        seconds = int(when.timestamp())
    except (OverflowError, ValueError):
        seconds = -1
    if not 0 <= seconds <= LATEST:
        raise BadRequestData(f"{key} {value!r} is not between 1970 and 2100")
    return seconds


def _amount(body: dict[str, Any], currency: str, key: str = "amount") -> int:
    """``amount``: a decimal string in the currency's major unit (``"1500.00"``), or
    ``amount_minor``: an integer of minor units. Never a float."""
    minor = body.get(f"{key}_minor")
    if minor is not None:
        if isinstance(minor, bool) or not isinstance(minor, int) or not 0 < minor <= MAX_AMOUNT:
            raise BadRequestData(f"{key}_minor must be an integer from 1 to {MAX_AMOUNT}")
        return minor
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequestData(
            f'{key} must be a decimal string such as "1500.00" (or {key}_minor an integer)'
        )
    return to_minor(value, currency)


def _money(minor: int, currency: str) -> dict[str, Any]:
    return {"minor": minor, "major": to_major(minor, currency), "currency": currency}


def _account_body(account: Any) -> dict[str, Any]:
    out = account.as_dict()
    out["balance_major"] = to_major(account.balance, account.currency)
    out["available_major"] = to_major(account.available, account.currency)
    return out


async def _run(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kw)


# -- QR codes ------------------------------------------------------------------------------
def _encoder(scheme: str) -> Callable[..., str]:
    from . import schemes

    encoders = {n: getattr(schemes, n) for n in schemes.NAMES if hasattr(schemes, n)}
    if scheme not in encoders:
        raise BadRequestData(f"unknown scheme {scheme!r}; known: {', '.join(sorted(encoders))}")
    return encoders[scheme]


def encode_qr(scheme: str, fields: dict[str, Any]) -> str:
    """A scheme's payload from its encoder's own keyword arguments (a field it does not
    take is named in the error)."""
    encoder = _encoder(scheme)
    params = inspect.signature(encoder).parameters
    unknown = sorted(set(fields) - set(params))
    if unknown:
        raise BadRequestData(
            f"the {scheme} encoder takes no {', '.join(unknown)}; it takes {', '.join(params)}"
        )
    for key, value in fields.items():
        if not isinstance(value, (str, int, bool)) or isinstance(value, float):
            raise BadRequestData(f"{key} must be a string (amounts as decimal strings)")
        if isinstance(value, str) and any(ord(c) < 32 for c in value):
            raise BadRequestData(f"{key} holds a control character")
    try:
        return encoder(**fields)
    except PaymentsError:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise BadRequestData(f"{scheme}: {exc}") from None


def _image_answer(
    request: Request, payload: str, extra: dict[str, Any], *, check: bool
) -> Response:
    from . import qr

    fmt = request.query_params.get("format", "json")
    if fmt == "png":
        return Response(qr.png(payload, check=check), media_type="image/png")
    if fmt == "svg":
        return Response(qr.svg(payload, check=check), media_type="image/svg+xml")
    if fmt != "json":
        raise BadRequestData("format must be json, png or svg")
    return json_response(
        {
            **extra,
            "payload": payload,
            "svg": qr.svg(payload, check=check),
            "png_base64": base64.b64encode(qr.png(payload, check=check)).decode("ascii"),
        }
    )


@payments_endpoint
async def pay_qr(request: Request) -> Response:
    body = await _object(request)
    scheme = _str(body, "scheme", most=32)
    fields = body.get("fields", {k: v for k, v in body.items() if k != "scheme"})
    if not isinstance(fields, dict):
        raise BadRequestData("fields must be an object of the encoder's arguments")
    payload = encode_qr(scheme, fields)
    from .schemes import decode

    return _image_answer(request, payload, {"scheme": decode(payload).scheme}, check=True)


@payments_endpoint
async def pay_decode(request: Request) -> Response:
    body = await _object(request)
    payload = body.get("payload")
    if not isinstance(payload, str) or len(payload) > 512:
        raise BadRequestData("payload must be a string of at most 512 characters")
    from .schemes import decode

    try:
        decoded = decode(payload)
    except PaymentsError:
        raise
    except (ValueError, ArithmeticError) as exc:  # the codec's contract is PayloadError
        raise BadRequestData(f"the payload cannot be read: {exc}", code="bad_payload") from None
    return json_response(decoded.as_dict())


# -- fares ---------------------------------------------------------------------------------
def _taps_of(body: dict[str, Any]) -> list[Tap]:
    raw = body.get("taps")
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_TAPS:
        raise BadRequestData(f"taps must be a list of 1 to {MAX_TAPS} taps")
    taps = []
    for n, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequestData(f"taps[{n}] must be an object")
        kind = item.get("kind", "in")
        if kind not in ("in", "out"):
            raise BadRequestData(f"taps[{n}].kind must be in or out")
        taps.append(
            Tap(
                rider=_str(item, "rider", required=False, most=256) or "rider",
                at=_seconds(item.get("at"), f"taps[{n}].at"),
                stop=_str(item, "stop", most=128),
                product=_str(item, "product", most=64),
                kind=kind,
                concession=_str(item, "concession", required=False, most=32) or "",
            )
        )
    return taps


@payments_endpoint
async def pay_fare_quote(request: Request) -> Response:
    body = await _object(request)
    taps = _taps_of(body)
    final = _bool(body, "final", True)
    tariff = _payments(request).tariff
    days = price_taps(tariff, taps, final=final)
    tz = tariff.zone_info()
    return json_response(
        {
            "currency": tariff.currency,
            "days": [
                {
                    "rider": d.rider,
                    "date": d.date,
                    "total": _money(d.total, tariff.currency),
                    "charges": [c.as_dict(tariff.currency, tz) for c in d.charges],
                }  # fmt: skip
                for d in days
            ],
        }
    )


@payments_endpoint
async def pay_taps(request: Request) -> Response:
    require(request, "write")
    body = await _object(request)
    at = body.get("at")
    medium = body.get("medium", "ticket")
    kind = body.get("kind", "in")
    tap = TapRequest(
        id=_str(body, "id", most=100),
        stop=_str(body, "stop", most=128),
        product=_str(body, "product", most=64),
        at=_seconds(at, "at") if at is not None else int(time.time()),
        kind=kind,
        medium=medium,
        ticket=_str(body, "ticket", required=False, most=1024),
        account=_str(body, "account", required=False, most=128),
        rider=_str(body, "rider", required=False, most=256),
        concession=_str(body, "concession", required=False, most=32) or "",
        to_stop=_str(body, "to_stop", required=False, most=128),
        reference=_str(body, "reference", required=False, most=64),
        terminal=_str(body, "terminal", required=False, most=64) or "",
    )
    parts = _payments(request)
    collector = parts.collector(_tenant(request))
    result = await _run(collector.tap, tap)
    out = result.as_dict()
    out["charged_major"] = to_major(result.charged, result.currency)
    return json_response(out, status=201 if result.status == "created" else 200)


@payments_endpoint
async def pay_tickets(request: Request) -> Response:
    require(request, "write")
    body = await _object(request)
    account = _str(body, "account", most=128)
    concession = _str(body, "concession", required=False, most=32) or ""
    parts = _payments(request)
    if concession:
        parts.tariff.concession(concession)
    await _run(parts.ledger(_tenant(request)).account, account)  # 404 for an unknown one
    payload = parts.signer.issue(account, concession=concession, tenant=_tenant(request))
    ticket = parts.verifier.verify(payload, tenant=_tenant(request))
    extra = {"account": account, "expires_at": ticket.expires_at}
    return _image_answer(request, payload, extra, check=False)


# -- the ledger ----------------------------------------------------------------------------
@payments_endpoint
async def pay_open_account(request: Request) -> Response:
    require(request, "write")
    body = await _object(request)
    account_id = _str(body, "id", most=128)
    currency = check_currency(_str(body, "currency", most=3))
    kind = body.get("kind", "rider")
    limit: int | None = 0
    if "overdraft_limit" in body:
        raw = body["overdraft_limit"]
        limit = None if raw is None else _amount({"limit": raw}, currency, "limit")
    ledger = _payments(request).ledger(_tenant(request))
    existed = True
    try:
        await _run(ledger.account, account_id)
    except PaymentsError:
        existed = False
    account = await _run(ledger.open_account, account_id, currency, kind=kind,
                         overdraft_limit=limit)  # fmt: skip
    return json_response(_account_body(account), status=200 if existed else 201)


@payments_endpoint
async def pay_account(request: Request) -> Response:
    require(request, "read")
    ledger = _payments(request).ledger(_tenant(request))
    account = await _run(ledger.account, request.path_params["account_id"])
    return json_response(_account_body(account))


def _transfer_of(item: Any, n: int | None) -> Transfer:
    where = "" if n is None else f"transfers[{n}]."
    if not isinstance(item, dict):
        raise BadRequestData(f"{where or 'a transfer'} must be an object")
    try:
        currency = check_currency(_str(item, "currency", most=3))
        return Transfer(
            debit=_str(item, "debit", most=128),
            credit=_str(item, "credit", most=128),
            amount=_amount(item, currency),
            currency=currency,
            id=_str(item, "id", required=False, most=128) or "",
            pending=_bool(item, "pending", False),
            reference=_str(item, "reference", required=False, most=64),
            memo=_str(item, "memo", required=False, most=256) or "",
            timeout_s=_int(item, "timeout_s", 0, 0, 30 * 86400),
        )
    except (BadRequestData, MoneyError) as exc:
        raise BadRequestData(f"{where}{exc}") from None


@payments_endpoint
async def pay_transfers(request: Request) -> Response:
    require(request, "write")
    body = await _object(request)
    ledger = _payments(request).ledger(_tenant(request))
    if "transfers" not in body:
        result = await _run(ledger.transfer, _transfer_of(body, None))
        return json_response(result.as_dict(), status=201 if result.status == "created" else 200)
    raw = body["transfers"]
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_BATCH:
        raise BadRequestData(f"transfers must be a list of 1 to {MAX_BATCH} transfers")
    items = [_transfer_of(item, n) for n, item in enumerate(raw)]
    atomic = _bool(body, "atomic", True)
    results = await _run(ledger.transfer_batch, items, atomic=atomic)
    created = any(r.status == "created" for r in results)
    return json_response(
        {"atomic": atomic, "results": [r.as_dict() for r in results]},
        status=201 if created else 200,
    )


@payments_endpoint
async def pay_transfer(request: Request) -> Response:
    require(request, "read")
    ledger = _payments(request).ledger(_tenant(request))
    record = await _run(ledger.get_transfer, request.path_params["transfer_id"])
    out = record.as_dict()
    out["amount_major"] = to_major(record.amount, record.currency)
    out["posted_major"] = to_major(record.posted_amount, record.currency)
    return json_response(out)


@payments_endpoint
async def pay_post_transfer(request: Request) -> Response:
    require(request, "write")
    sent = request.headers.get("content-length", "0") != "0"
    body = await _object(request) if sent or "transfer-encoding" in request.headers else {}
    ledger = _payments(request).ledger(_tenant(request))
    transfer_id = request.path_params["transfer_id"]
    amount = None
    if "amount" in body or "amount_minor" in body:
        record = await _run(ledger.get_transfer, transfer_id)
        amount = _amount(body, record.currency)
    result = await _run(ledger.post, transfer_id, amount)
    return json_response(result.as_dict(), status=201 if result.status == "created" else 200)


@payments_endpoint
async def pay_void_transfer(request: Request) -> Response:
    require(request, "write")
    ledger = _payments(request).ledger(_tenant(request))
    result = await _run(ledger.void, request.path_params["transfer_id"])
    return json_response(result.as_dict(), status=201 if result.status == "created" else 200)


ROUTES: list[tuple[str, str, Any, str]] = [
    ("/qr", "POST", pay_qr, "A payment QR code of a scheme: payload and image"),
    ("/decode", "POST", pay_decode, "Read a QR payload: its scheme and tags"),
    ("/fares/quote", "POST", pay_fare_quote, "What a day of taps costs, each charge explained"),
    ("/taps", "POST", pay_taps, "A tap at a reader, paid (ticket, wallet, cash, scheme QR)"),
    ("/tickets", "POST", pay_tickets, "A signed, short-lived ticket QR for a wallet"),
    ("/accounts", "POST", pay_open_account, "Open a ledger account"),
    ("/accounts/{account_id}", "GET", pay_account, "An account's balances"),
    ("/transfers", "POST", pay_transfers, "A transfer, or a batch of them"),
    ("/transfers/{transfer_id}", "GET", pay_transfer, "A transfer"),
    ("/transfers/{transfer_id}/post", "POST", pay_post_transfer, "Post a pending transfer"),
    ("/transfers/{transfer_id}/void", "POST", pay_void_transfer, "Void a pending transfer"),
]


def routes() -> list[Route]:
    return [Route(BASE + path, fn, methods=[method]) for path, method, fn, _ in ROUTES]

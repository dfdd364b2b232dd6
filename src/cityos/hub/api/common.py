"""What every NGSI-LD route shares: tenant, @context, media types, body parsing, responses."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial, wraps
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from cityos.hub.api.queryparams import check_query_params
from cityos.hub.core import Hub
from cityos.hub.errors import (
    BadRequestData,
    InvalidRequest,
    NgsiLdError,
    NonexistentTenant,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
    accept_ranges,
    problem_media,
)
from cityos.hub.jsonbody import parse_json
from cityos.hub.ldcontext import (
    CORE_CONTEXT_URL,
    Context,
    link_header_for,
    parse_link_header,
    prepare_request,
)
from cityos.hub.model import MAX_ID_BYTES, MAX_NAME_BYTES, check_size
from cityos.hub.tenancy import tenant_of_headers

log = logging.getLogger("cityos.hub")

JSON = "application/json"
JSONLD = "application/ld+json"
GEOJSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"

Handler = Callable[[Request], Awaitable[Response]]


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


# Path parameters that hold names (types, attributes); every other one holds an id.
_NAME_PARAMS = frozenset({"attr", "type"})


def path_param(request: Request, name: str) -> str:
    """A path parameter with an encoded slash (kept as ``%2F`` by the app) restored; the one
    place every id or name in a path passes, so its size limit is checked here (400)."""
    value = request.path_params[name].replace("%2F", "/")
    limit = MAX_NAME_BYTES if name in _NAME_PARAMS else MAX_ID_BYTES
    return check_size(value, limit, f"path parameter {name}")


def location(prefix: str, ident: str) -> dict[str, str]:
    """The Location header of a created resource. Header values are Latin-1 bytes, so the id
    is percent-encoded as UTF-8 (an IRI mapped to a URI, RFC 3987 section 3.1), and so are
    ``/ ? # %``, so that the URL names exactly this id as one path segment."""
    return {"Location": f"{prefix}/{quote(ident, safe=_ID_SAFE)}"}


_ID_SAFE = ":@!$&'()*+,;=~"


def json_response(
    body: Any, status: int = 200, *, media_type: str = JSON, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)


def problem(err: NgsiLdError, instance: str | None = None, accept: str | None = None) -> Response:
    """The error as problem details, labelled as the request's ``Accept`` allows."""
    return Response(
        orjson.dumps(err.to_problem(instance)),
        status_code=err.status,
        media_type=problem_media(accept),
        headers=getattr(err, "headers", None),  # BodyTooLarge: Connection: close
    )


# SQLSTATE of a regular expression the database cannot compile
INVALID_REGULAR_EXPRESSION = "2201B"


def endpoint(fn: Handler) -> Handler:
    """Turn NGSI-LD errors into problem details; anything unexpected is logged and a 500 problem."""

    @wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            check_query_params(fn.__name__, request)  # an unknown parameter: 400 first
            # remote @context: fetched off the event loop (issue 11)
            if (link := request.headers.get("link")) and hasattr(request.app.state, "hub"):
                await prepare_request(hub_of(request).contexts, link)
            return await fn(request)
        except NgsiLdError as err:
            return problem(err, request.url.path, request.headers.get("accept"))
        except Exception as exc:
            accept = request.headers.get("accept")
            if getattr(exc, "sqlstate", None) == INVALID_REGULAR_EXPRESSION:
                # a pattern RE2 took that PostgreSQL's engine refuses (e.g. (?P<name>…))
                why = f"the database refused a regular expression: {str(exc).strip()}"
                return problem(BadRequestData(why), request.url.path, accept)
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            err = NgsiLdError("internal error; see the server log")
            return problem(err, request.url.path, accept)

    return wrapper


_store_threads: ThreadPoolExecutor | None = None


async def store_call(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, a hub call that reaches the store, where it does not stall the
    event loop: with PostgreSQL a call mostly waits on round trips, and run inline those waits
    would queue every other request behind it (one worker served PATCH at the rate of its
    round trips, its CPU a third idle). With SQLite the call is CPU work: run inline.

    The store says how many threads (``call_threads``): enough to overlap one call's round
    trips with another's Python, not asyncio's default executor, whose extra threads only
    contend for the GIL."""
    global _store_threads
    store = hub_of(request).store
    if not store.waits_on_network:
        return fn(*args, **kwargs)
    if _store_threads is None:
        _store_threads = ThreadPoolExecutor(store.call_threads, thread_name_prefix="cityos-store")
    call = partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_store_threads, call)


def tenant_of(request: Request, *, read: bool) -> str:
    """The request's tenant, decided as the door decided it (:mod:`cityos.hub.tenancy`);
    for a read, 404 when the tenant holds nothing yet."""
    tenant = request.scope.get("state", {}).get("tenant")  # the door's decision, if it ran
    if tenant is None:
        tenant = tenant_of_headers(request.scope["headers"])
    if read and tenant and not hub_of(request).store.tenant_exists(tenant):
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")
    return tenant


def _media(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


# Methods a browser sends across origins only after a CORS preflight, which only the origins
# in ``cors_origins`` pass
_PREFLIGHTED = frozenset({"PATCH", "PUT"})


def body_media(request: Request) -> str:
    """The media type of a request's body. A PATCH or PUT without ``Content-Type`` is read as
    JSON, NGSI-LD's default representation (RFC 9110, 8.3 lets a recipient examine the
    data; clients such as Python's ``requests`` with ``data=`` send none; ETSI 039_05). A
    POST without one stays 415: a web page can send that POST to a hub on the same network
    without a preflight, and the Content-Type check is what keeps it from writing."""
    media = _media(request.headers.get("content-type"))
    if not media and request.method in _PREFLIGHTED:
        return JSON
    return media


class BodyTooLarge(PayloadTooLarge):
    """A 413 after which the connection is closed (the rest of the body is not read)."""

    headers = {"Connection": "close"}


DRAIN_TIMEOUT_S = 5.0


async def _drain(request: Request, budget: int) -> None:
    """Read and drop what is left of a refused body, up to ``budget`` bytes and
    DRAIN_TIMEOUT_S, as nginx's lingering close does: a client still sending it would find
    the connection reset, and maybe never read the 413. A client that sent
    ``Expect: 100-continue`` waits for the answer instead: nothing to read."""
    if request.headers.get("expect", "").lower() == "100-continue":
        return
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while budget >= 0:
                message = await request.receive()
                budget -= len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
    except TimeoutError:
        return


async def _refuse_body(request: Request, detail: str) -> BodyTooLarge:
    await _drain(request, hub_of(request).settings.max_drain_bytes)
    return BodyTooLarge(detail)


async def read_limited(request: Request, limit: int, what: str = "body") -> bytes:
    """The raw body, at most ``limit`` bytes: over it (declared or sent), BodyTooLarge once
    the rest has been drained, so the client reads the 413 rather than a reset."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise await _refuse_body(
            request, f"{what} of {declared} bytes is over the limit of {limit} bytes"
        )
    return await _receive_body(request, limit, what)


async def _receive_body(request: Request, limit: int, what: str = "body") -> bytes:
    """The body, read message by message (so that an over-long one is drained only while
    more of it is coming); BodyTooLarge past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        more = message.get("more_body", False)
        if size > limit:
            if more:
                await _drain(request, hub_of(request).settings.max_drain_bytes)
            raise BodyTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not more:
            return b"".join(chunks)


async def read_body(request: Request, *, allow: tuple[str, ...] = (JSON, JSONLD)) -> Any:
    """The parsed JSON body; checks Content-Type (415) and size (413) before parsing."""
    media = body_media(request)
    if media not in allow:
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'} is not supported here; use {' or '.join(allow)}"
        )
    raw = await read_limited(request, hub_of(request).settings.max_body_bytes)
    if not raw.strip():
        raise InvalidRequest("the request body is empty")
    body = parse_json(raw, max_depth=hub_of(request).settings.max_json_depth)
    await prepare_request(hub_of(request).contexts, None, body)  # off the event loop
    return body


def context_value(request: Request, body: Any | None) -> Any:
    """The @context a request carries: in the body (ld+json) or in a Link header (json)."""
    media = body_media(request)
    link = request.headers.get("link")
    if body is not None and media == JSONLD:
        items = body if isinstance(body, list) else [body]
        ctxs = [i.get("@context") for i in items if isinstance(i, dict)]
        if link:
            raise BadRequestData(
                "with application/ld+json the @context goes in the body, not a Link header"
            )
        if not ctxs or any(c is None for c in ctxs):
            raise BadRequestData("application/ld+json body without @context")
        return ctxs[0]
    if body is not None and isinstance(body, dict) and "@context" in body:
        raise BadRequestData("an @context in the body needs Content-Type application/ld+json")
    if link:
        url = parse_link_header(link)
        if url is None and body is None:
            # a read: a link of another relation is no @context (RFC 8288), the core one
            # applies (ngsildclient sends its context with a wrong rel on GET subscription)
            return None
        if url is None:
            raise BadRequestData(f"Link header {link!r} names no JSON-LD context")
        return url
    return None


def resolve_context(request: Request, body: Any | None = None) -> Context:
    return hub_of(request).contexts.resolve(context_value(request, body))


def response_media(request: Request, *, geo: bool = False) -> str:
    """The representation to answer with, from Accept (406 when none fits)."""
    accept = request.headers.get("accept", "")
    if not accept:
        return JSON
    best = None
    for media, q in accept_ranges(accept):
        if media in ("*/*", "application/*"):
            media = JSON
        fits = media in (JSON, JSONLD) or (geo and media == GEOJSON)
        if fits and (best is None or q > best[0]):
            best = (q, media)
    if best is None:
        raise NotAcceptable(
            f"cannot answer with {accept}; use application/json or application/ld+json"
        )
    return best[1]


def entity_response(
    request: Request,
    body: Any,
    media: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """Attach the caller's context the way the media type wants: in the body or a Link header."""
    headers = dict(headers or {})
    ctx_url = context_url_for_response(request)
    if media == JSONLD:
        if isinstance(body, list):
            body = [{**b, "@context": ctx_url} for b in body]
        elif isinstance(body, dict):
            body = {**body, "@context": ctx_url}
    else:
        headers["Link"] = link_header_for(ctx_url)
    return json_response(body, status, media_type=media, headers=headers)


def context_url_for_response(request: Request) -> Any:
    link = request.headers.get("link")
    if link:
        url = parse_link_header(link)
        if url:
            return url
    return CORE_CONTEXT_URL


def context_link_headers(request: Request, media: str) -> dict[str, str]:
    """The ``Link`` header naming the caller's @context, for a plain-JSON answer (an
    ``application/ld+json`` one carries it in the body)."""
    return {} if media == JSONLD else {"Link": link_header_for(context_url_for_response(request))}


def page_links(request: Request, base: str, offset: int, limit: int, total: int) -> list[str]:
    """The prev/next ``Link`` values of one page of a list (clause 5.5.9), every other
    parameter kept as sent: ``</ngsi-ld/v1/…?limit=1&offset=2>;rel="next";type=…``."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]

    def link(at: int, rel: str) -> str:
        qs = urlencode([*kept, ("limit", str(limit)), ("offset", str(at))], safe=",;:/")
        return f'<{base}?{qs}>;rel="{rel}";type="application/ld+json"'

    links = []
    if offset > 0 and limit > 0:
        links.append(link(max(0, offset - limit), "prev"))
    if limit > 0 and offset + limit < total:
        links.append(link(offset + limit, "next"))
    return links


def flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw.lower() in ("true", ""):
        return True
    if raw.lower() == "false":
        return False
    raise BadRequestData(f"parameter {name} must be true or false, not {raw!r}")


def options_of(request: Request) -> set[str]:
    opts: set[str] = set()
    for key in ("options", "format"):
        for raw in request.query_params.getlist(key):
            opts.update(o.strip() for o in raw.split(",") if o.strip())
    return opts


def csv_param(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.getlist(name)
    if not raw:
        return None
    items = [x.strip() for r in raw for x in r.split(",") if x.strip()]
    if not items:
        raise BadRequestData(f"parameter {name} is empty")
    return items


INT_PARAM_MAX = 2**62


def int_param(request: Request, name: str, default: int, *, low: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        val = int(raw)
    except ValueError:
        raise BadRequestData(f"parameter {name} must be an integer, not {raw!r}") from None
    if val < low:
        raise BadRequestData(f"parameter {name} must be at least {low}")
    if val > INT_PARAM_MAX:  # beyond any database's integers
        raise BadRequestData(f"parameter {name} must be at most {INT_PARAM_MAX}")
    return val


def validate_uri(value: str, what: str) -> str:
    check_size(value, MAX_ID_BYTES, what)
    if not is_uri(value):
        raise BadRequestData(f"{what} {value!r} is not a URI")
    return value


def is_uri(value: Any) -> bool:
    if not isinstance(value, str) or ":" not in value or len(value) > 2048:
        return False
    scheme, _, rest = value.partition(":")
    if not scheme or not rest or not scheme[0].isalpha():
        return False
    if not all(c.isalnum() or c in "+-." for c in scheme):
        return False
    return not any(c.isspace() or c in '<>"{}|\\^`' for c in value)

"""HTTP correctness under hostile clients (issue 11, item 7), over a real uvicorn server.

* A body over ``CITYOS_MAX_BODY_BYTES`` gets its 413 problem, read by the client, with a
  ``Content-Length`` or chunked, on a keep-alive connection or one the client asked to
  close: the hub reads and drops the rest of the body (up to ``max_drain_bytes``, 5 s)
  before it answers, then closes the connection. Before, a client that sends its whole
  body before reading (most do) found the connection reset under it. Past the drain
  budget the hub stops reading instead of swallowing an endless body.
* Every 405 carries ``Allow`` with the route's methods (RFC 9110, section 15.5.6).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from cityos.config import Settings
from cityos.hub.core import Hub

BASE = "/ngsi-ld/v1"
LIMIT = 64 * 1024  # max_body_bytes of the test hub
DRAIN = 4 * 1024 * 1024  # max_drain_bytes of the test hub
BIG = 3 * 1024 * 1024  # over the body limit, within the drain budget
JSON = {"Content-Type": "application/json"}


@dataclass
class Served:
    base: str
    port: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The hub (SQLite) on uvicorn, in a thread, on a free port of 127.0.0.1."""
    from cityos.hub.store.sqlite import SqliteStore
    from cityos.web.app import create_app

    settings = Settings(max_body_bytes=LIMIT, max_drain_bytes=DRAIN, rate_per_s=0)
    store = SqliteStore(tmp_path_factory.mktemp("protocol") / "hub.db")
    app = create_app(settings, Hub(settings, store=store))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(30)


def big_entity(size: int = BIG) -> bytes:
    return b'{"id": "urn:ngsi-ld:T:big", "type": "T", "v": "' + b"x" * size + b'"}'


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def assert_413(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text[:200]
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 413 and f"limit of {LIMIT} bytes" in problem["detail"]
    assert r.headers["connection"] == "close"


def assert_nothing_written(served: Served) -> None:
    r = httpx.get(f"{served.base}{BASE}/entities/urn:ngsi-ld:T:big", timeout=10)
    assert r.status_code == 404


# ------------------------------------------------------------------------------- 413


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_httpx_reads_the_413_problem(served: Served, framing: str, close: bool) -> None:
    body = big_entity()
    content = body if framing == "content-length" else chunks(body)
    headers = {**JSON, **({"Connection": "close"} if close else {})}
    with httpx.Client(base_url=served.base, timeout=30) as client:
        r = client.post(f"{BASE}/entities", content=content, headers=headers)
        assert_413(r)
        # the client carries on, on a new connection
        ok = client.post(f"{BASE}/entities", json={"id": "urn:ngsi-ld:T:after", "type": "T"})
        assert ok.status_code in (201, 409), ok.text
    assert_nothing_written(served)


def _send_all_then_read(port: int, head: bytes, body_parts: Iterator[bytes]) -> bytes:
    """What most clients do: write the whole request, then read the answer. A reset while
    writing raises here (the client never sees the 413)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_that_sends_its_whole_body_first_reads_the_413(
    served: Served, framing: str, close: bool
) -> None:
    body = big_entity(16 * LIMIT)
    head = f"POST {BASE}/entities HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n"
        parts = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks(body)] + [b"0\r\n\r\n"]
    else:
        head += f"Content-Length: {len(body)}\r\n"
        parts = list(chunks(body))
    if close:
        head += "Connection: close\r\n"
    answer = _send_all_then_read(served.port, (head + "\r\n").encode(), iter(parts))
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"connection: close" in rest.lower()
    assert b"application/problem+json" in rest and b'"status":413' in rest
    assert_nothing_written(served)


def test_expect_100_continue_gets_the_413_without_sending_the_body(served: Served) -> None:
    head = (
        f"POST {BASE}/entities HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BIG}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):  # the hub answers and closes: no body is awaited
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]


def test_a_body_beyond_the_drain_budget_is_not_read_to_its_end(served: Served) -> None:
    """An endless body: the hub stops reading after the drain budget and closes, so the
    client's writes fail long before it has sent 64 MiB (before, uvicorn read it all)."""
    head = (
        f"POST {BASE}/entities HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1 << 40}\r\n\r\n"
    )
    sent = 0
    block = b"x" * 65536
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(head.encode())
        with pytest.raises(OSError):  # reset or broken pipe: the hub closed the connection
            while sent < 64 * 1024 * 1024:
                sock.sendall(block)
                sent += len(block)
    assert sent >= DRAIN  # it did read (and drop) the budget first


# ------------------------------------------------------------------------------- 405

ALLOWED = [
    (f"{BASE}/entities", "PUT", {"GET", "HEAD", "POST", "DELETE"}),
    (f"{BASE}/entities/urn:ngsi-ld:T:1", "POST", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
    (f"{BASE}/entities/urn:ngsi-ld:T:1/attrs", "GET", {"POST", "PATCH"}),
    (f"{BASE}/entityOperations/upsert", "GET", {"POST"}),
    (f"{BASE}/subscriptions", "PUT", {"GET", "HEAD", "POST"}),
    (f"{BASE}/types", "POST", {"GET", "HEAD"}),
    (f"{BASE}/temporal/entities/urn:ngsi-ld:T:1/attrs/v", "GET", {"DELETE"}),
    ("/health", "POST", {"GET", "HEAD"}),
    ("/openapi.json", "DELETE", {"GET", "HEAD"}),
    ("/iot/devices", "PUT", {"GET", "HEAD", "POST"}),
]


@pytest.mark.parametrize(("path", "method", "allowed"), ALLOWED)
def test_every_405_lists_the_routes_methods_in_allow(
    served: Served, path: str, method: str, allowed: set[str]
) -> None:
    r = httpx.request(method, served.base + path, timeout=10)
    assert r.status_code == 405, r.text[:200]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
    assert r.json()["status"] == 405


@pytest.mark.parametrize("route", ["device", "token"])
def test_the_device_and_token_routes_let_the_client_read_their_413(
    served: Served, route: str
) -> None:
    """The same for the routes that read their bodies themselves: a device message over
    device_max_message_bytes, a login form over 16 KiB."""
    if route == "device":
        tenant = {"fiware-service": "protocol"}
        group = {"apikey": "k413", "entity_type": "T",
                 "attributes": [{"object_id": "v", "name": "v"}]}  # fmt: skip
        r = httpx.post(f"{served.base}/iot/services", json={"services": [group]}, headers=tenant)
        assert r.status_code in (201, 409), r.text
        devices = {"devices": [{"device_id": "d413", "apikey": "k413"}]}
        r = httpx.post(f"{served.base}/iot/devices", json=devices, headers=tenant)
        assert r.status_code in (201, 409), r.text
        path, media = "/iot/d?k=k413&i=d413", "text/plain\r\nfiware-service: protocol"
    else:
        path, media = "/auth/token", "application/x-www-form-urlencoded"
    body = b"v|" + b"9" * (16 * LIMIT)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    answer = _send_all_then_read(served.port, head.encode(), chunks(body))
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"connection: close" in rest.lower()

"""Header names leave the hub in their canonical case, on both uvicorn protocols, while
the server still frames the response from them (cityos.web.headercase)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from cityos.config import Settings
from cityos.web.app import create_app
from cityos.web.headercase import CanonicalName, canonical


def test_canonical_names() -> None:
    assert canonical(b"location") == b"Location"
    assert canonical(b"ngsild-results-count") == b"NGSILD-Results-Count"
    assert canonical(b"content-type") == b"Content-Type"
    assert canonical(b"x-content-type-options") == b"X-Content-Type-Options"
    assert canonical(b"www-authenticate") == b"WWW-Authenticate"
    # what the server frames the response by stays the lowercase it compares against
    for name in (b"content-length", b"Transfer-Encoding", b"connection"):
        assert canonical(name) == name.lower() and not isinstance(canonical(name), CanonicalName)
    assert canonical(b"location").lower() == b"Location"


@pytest.fixture(params=["httptools", "h11"])
def hub_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hub.db", rate_per_s=0, detect=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, http=request.param, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def exchange(port: int, request: bytes) -> tuple[list[bytes], bytes]:
    """One raw HTTP/1.1 exchange: the header lines as written, and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[1:], body


def post(path: str, doc: dict) -> bytes:
    body = json.dumps(doc).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


def names(lines: list[bytes]) -> set[bytes]:
    return {line.split(b":", 1)[0] for line in lines}


def test_location_and_count_in_canonical_case(hub_port: int) -> None:
    lines, body = exchange(
        hub_port, post("/ngsi-ld/v1/entities", {"id": "urn:ngsi-ld:T:1", "type": "T"})
    )
    assert lines and b"Location: /ngsi-ld/v1/entities/urn:ngsi-ld:T:1" in lines
    assert body == b""
    lines, body = exchange(
        hub_port,
        b"GET /ngsi-ld/v1/entities?type=T&count=true HTTP/1.1\r\nHost: hub\r\n"
        b"Connection: close\r\n\r\n",
    )
    found = names(lines)
    assert {b"NGSILD-Results-Count", b"Content-Type", b"X-Content-Type-Options"} <= found
    assert b"NGSILD-Results-Count: 1" in lines
    # the body is framed by the content-length the server read (lowercase, as it compares)
    length = int(next(line for line in lines if line.lower().startswith(b"content-length:"))[15:])
    assert len(body) == length and json.loads(body)[0]["id"] == "urn:ngsi-ld:T:1"


def test_error_answer_is_framed_too(hub_port: int) -> None:
    lines, body = exchange(hub_port, post("/ngsi-ld/v1/entities", {"type": "T"}))
    assert any(line.startswith(b"Content-Type: application/") for line in lines)
    assert json.loads(body)["status"] == 400

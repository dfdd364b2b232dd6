"""No server-side request forgery: the guard itself, then the real @context fetch and
notification delivery paths against local HTTP servers (that redirect, rebind, ...)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.hub.delivery import publish_mqtt
from cityos.hub.errors import LdContextNotAvailable
from cityos.hub.ldcontext import ContextResolver
from cityos.hub.netguard import (
    AsyncGuardedTransport,
    DestinationError,
    DestinationRefused,
    GuardedTransport,
    check_destination,
    is_loopback_host,
    literal_problem,
)

BASE = "/ngsi-ld/v1"
CONTEXT_BODY = json.dumps({"@context": {"speed": "https://example.org/speed"}}).encode()


class Site:
    """A local HTTP server: path -> (status, headers, body); records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[tuple[str, str, str]] = []  # (method, path, Host header)
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                site.hits.append((self.command, self.path, self.headers.get("host", "")))
                status, headers, body = site.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.server.shutdown()
    s.server.server_close()


# -- the rule --------------------------------------------------------------------------

REFUSED = [
    "http://127.0.0.1/",
    "http://127.8.9.10:8080/x",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/",  # hex, short form
    "http://0177.0.0.1/",  # octal
    "http://127.1/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://localhost:1026/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # shared (carrier-grade NAT)
    "http://169.254.1.1/",  # link-local
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "https://192.0.2.10/",  # documentation: not routable
    "http://240.0.0.1/",  # reserved
]
NEVER = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/",
    "http://0.0.0.0:1026/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_destinations_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(DestinationRefused, match="refused") as info:
        check_destination(url, allow_private=False)
    assert info.value.allowable
    check_destination(url, allow_private=True)  # an operator may allow these


@pytest.mark.parametrize("url", NEVER)
def test_metadata_unspecified_and_multicast_are_never_allowed(url: str) -> None:
    for allow in (False, True):
        with pytest.raises(DestinationRefused) as info:
            check_destination(url, allow_private=allow)
        assert not info.value.allowable


def test_public_addresses_pass_and_the_reason_is_named() -> None:
    check_destination("http://8.8.8.8/", allow_private=False)
    check_destination("https://[2606:4700:4700::1111]:8443/x", allow_private=False)
    with pytest.raises(DestinationRefused, match=r"169\.254\.169\.254 is a cloud metadata"):
        check_destination("http://169.254.169.254/", allow_private=True)
    with pytest.raises(DestinationRefused, match=r"127\.0\.0\.1 inside IPv6"):
        check_destination("http://[::ffff:127.0.0.1]/", allow_private=False)
    with pytest.raises(DestinationError, match="cannot be resolved"):
        check_destination("http://no-such-host.invalid/", allow_private=False)


def test_any_private_address_among_several_refuses_the_host(monkeypatch) -> None:
    real = socket.getaddrinfo

    def two_answers(host: str, port: Any, *args: Any, **kw: Any) -> list[Any]:
        if host == "mixed.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
            ]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(DestinationRefused, match=r"mixed\.test resolves to 10\.0\.0\.7"):
        check_destination("http://mixed.test/", allow_private=False)
    check_destination("http://mixed.test/", allow_private=lambda host: host == "mixed.test")


def test_literal_checks_need_no_dns() -> None:
    for host in (
        "2130706433",
        "0x7f.1",
        "[::ffff:127.0.0.1]",
        "10.0.0.1",
        "localhost",
        "a.localhost",
    ):
        assert literal_problem(host, allow_private=False), host
        assert literal_problem(host, allow_private=True) is None, host
    assert "metadata" in (literal_problem("169.254.169.254", allow_private=True) or "")
    for host in ("8.8.8.8", "example.org", "hooks.city.example"):
        assert literal_problem(host, allow_private=False) is None
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.5")
    assert not is_loopback_host("")


# -- connections go to the checked address (DNS rebinding) ------------------------------


def _rebinding_resolver(monkeypatch, first: str, then: str) -> list[str]:
    """``rebind.test`` answers ``first`` once, ``then`` afterwards; returns the log of calls."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def resolve(host: str, port: Any, *args: Any, **kw: Any) -> list[Any]:
        if host == "rebind.test":
            calls.append(host)
            ip = first if len(calls) == 1 else then
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return calls


def test_transport_connects_to_the_address_it_checked(site: Site, monkeypatch) -> None:
    site.routes["/x"] = (200, {}, b"ok")
    # checked as public, then the name is re-pointed at loopback: a check-then-connect client
    # would resolve again and reach the local server; this one connects to what it checked
    calls = _rebinding_resolver(monkeypatch, first="8.8.8.8", then="127.0.0.1")
    with (
        httpx.Client(transport=GuardedTransport(allow_private=False), timeout=0.5) as client,
        pytest.raises(httpx.TransportError),
    ):
        client.get(f"http://rebind.test:{site.port}/x")
    assert calls == ["rebind.test"] and site.hits == []
    # and with the order reversed the check refuses before any connection
    calls = _rebinding_resolver(monkeypatch, first="127.0.0.1", then="8.8.8.8")
    with (
        httpx.Client(transport=GuardedTransport(allow_private=False)) as client,
        pytest.raises(DestinationRefused, match="rebind.test resolves to 127.0.0.1"),
    ):
        client.get(f"http://rebind.test:{site.port}/x")
    assert site.hits == []


def test_transport_keeps_the_host_name_for_http(site: Site, monkeypatch) -> None:
    site.routes["/x"] = (200, {}, b"ok")
    _rebinding_resolver(monkeypatch, first="127.0.0.1", then="127.0.0.1")
    with httpx.Client(transport=GuardedTransport(allow_private=True)) as client:
        r = client.get(f"http://rebind.test:{site.port}/x")
    assert r.text == "ok"
    assert site.hits == [("GET", "/x", f"rebind.test:{site.port}")]


def test_async_transport_refuses_and_allows(site: Site) -> None:
    site.routes["/x"] = (200, {}, b"ok")

    async def go(allow: bool) -> str:
        async with httpx.AsyncClient(transport=AsyncGuardedTransport(allow_private=allow)) as c:
            return (await c.get(site.url("/x", "localhost"))).text

    with pytest.raises(DestinationRefused, match="loopback"):
        asyncio.run(go(False))
    assert site.hits == []
    assert asyncio.run(go(True)) == "ok"


# -- remote @context: the real fetch path -----------------------------------------------


def test_context_fetch_refuses_loopback_even_when_allowlisted(site: Site) -> None:
    site.routes["/c.jsonld"] = (200, {"content-type": "application/ld+json"}, CONTEXT_BODY)
    resolver = ContextResolver(allow_hosts={"127.0.0.1"})
    with pytest.raises(LdContextNotAvailable, match="loopback.*CITYOS_CONTEXT_ALLOW_PRIVATE_HOSTS"):
        resolver.resolve(site.url("/c.jsonld"))
    assert site.hits == []
    allowed = ContextResolver(allow_hosts={"127.0.0.1"}, allow_private_hosts={"127.0.0.1"})
    ctx = allowed.resolve(site.url("/c.jsonld"))
    assert ctx.expand_term("speed") == "https://example.org/speed"


def test_context_fetch_rechecks_every_redirect(site: Site) -> None:
    site.routes["/c.jsonld"] = (200, {}, CONTEXT_BODY)
    site.routes["/to-localhost"] = (302, {"location": site.url("/c.jsonld", "localhost")}, b"")
    site.routes["/to-metadata"] = (302, {"location": "http://169.254.169.254/latest/"}, b"")
    resolver = ContextResolver(
        allow_hosts={"127.0.0.1", "localhost", "169.254.169.254"},
        allow_private_hosts={"127.0.0.1", "169.254.169.254"},
    )
    # 127.0.0.1 may be private; the hop to localhost (same machine, not allowed) may not
    with pytest.raises(LdContextNotAvailable, match="localhost resolves to 127.0.0.1"):
        resolver.resolve(site.url("/to-localhost"))
    with pytest.raises(LdContextNotAvailable, match="cloud metadata"):
        resolver.resolve(site.url("/to-metadata"))
    assert [h[1] for h in site.hits] == ["/to-localhost", "/to-metadata"]


def test_context_through_the_api_is_refused_with_the_reason(site: Site, tmp_path) -> None:
    from cityos.web.app import create_app

    site.routes["/c.jsonld"] = (200, {}, CONTEXT_BODY)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/ctx.db", context_allow_hosts=["127.0.0.1"]
    )
    entity = {"id": "urn:ngsi-ld:T:1", "type": "T", "@context": site.url("/c.jsonld")}
    with TestClient(create_app(settings)) as client:
        r = client.post(
            f"{BASE}/entities",
            content=json.dumps(entity),
            headers={"Content-Type": "application/ld+json"},
        )
    assert r.status_code == 503, r.text
    assert r.json()["type"].endswith("LdContextNotAvailable")
    assert "loopback" in r.json()["detail"]
    assert site.hits == []


# -- notifications: the real delivery path ----------------------------------------------


def _subscription(uri: str) -> dict[str, Any]:
    return {
        "type": "Subscription",
        "entities": [{"type": "T"}],
        "notification": {"endpoint": {"uri": uri}, "format": "keyValues"},
    }


def _entity(n: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:T:{n}", "type": "T", "v": {"type": "Property", "value": n}}


def _wait(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def strict_hub(tmp_path) -> Iterator[TestClient]:
    """A hub that may not notify private addresses (as when it listens on the network)."""
    from cityos.web.app import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/n.db",
        notify_allow_private="false",
        notify_backoff_s=0.05,
        notify_max_attempts=1,
        notify_poll_s=0.05,
        notify_timeout_s=2,
    )
    with TestClient(create_app(settings, Hub(settings))) as client:
        yield client


def _failure_reason(client: TestClient, sub_id: str) -> str:
    def reason() -> str | None:
        sub = client.get(f"{BASE}/subscriptions/{sub_id}").json()
        return sub["notification"].get("lastFailureReason")

    return _wait(reason)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9/n",
        "http://2130706433:9/n",
        "http://0x7f.1:9/n",
        "http://[::ffff:127.0.0.1]:9/n",
        "https://10.0.0.5/n",
        "http://localhost:9/n",
        "mqtt://192.168.0.10:1883/city/air",
        "http://169.254.169.254/latest/",
    ],
)
def test_subscription_to_a_literal_private_address_is_400(strict_hub, endpoint: str) -> None:
    r = strict_hub.post(f"{BASE}/subscriptions", json=_subscription(endpoint))
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "refused" in detail
    if "169.254.169.254" not in endpoint:
        assert "CITYOS_NOTIFY_ALLOW_PRIVATE" in detail


def test_update_to_a_private_endpoint_is_400(strict_hub) -> None:
    sub = {**_subscription("http://8.8.8.8:9/n"), "id": "urn:ngsi-ld:Subscription:upd"}
    assert strict_hub.post(f"{BASE}/subscriptions", json=sub).status_code == 201
    r = strict_hub.patch(
        f"{BASE}/subscriptions/{sub['id']}",
        json={"notification": {"endpoint": {"uri": "http://10.0.0.1/n"}}},
    )
    assert r.status_code == 400 and "10.0.0.1 is private" in r.json()["detail"]


def test_delivery_to_a_name_that_resolves_private_fails_with_the_reason(
    strict_hub, site: Site, monkeypatch
) -> None:
    """A host name is not judged at subscription time (no DNS there): the deliverer resolves
    it, refuses, and says why in lastFailureReason."""
    site.routes["/notify"] = (200, {}, b"")
    _rebinding_resolver(monkeypatch, first="127.0.0.1", then="127.0.0.1")
    hooks = {
        "urn:ngsi-ld:Subscription:http": site.url("/notify", "rebind.test"),
        "urn:ngsi-ld:Subscription:mqtt": "mqtt://rebind.test:1883/city/t",
    }
    for sub_id, uri in hooks.items():
        body = {**_subscription(uri), "id": sub_id}
        assert strict_hub.post(f"{BASE}/subscriptions", json=body).status_code == 201
    assert strict_hub.post(f"{BASE}/entities", json=_entity(1)).status_code == 201
    for sub_id in hooks:
        reason = _failure_reason(strict_hub, sub_id)
        assert reason.startswith("endpoint refused: rebind.test resolves to 127.0.0.1"), reason
        assert "loopback" in reason and "CITYOS_NOTIFY_ALLOW_PRIVATE=true" in reason
        sub = strict_hub.get(f"{BASE}/subscriptions/{sub_id}").json()["notification"]
        assert sub["status"] == "failed" and sub["timesFailed"] == 1
    assert site.hits == []


def test_delivery_does_not_follow_redirects(tmp_path, site: Site) -> None:
    from cityos.web.app import create_app

    site.routes["/hook"] = (307, {"location": site.url("/elsewhere")}, b"")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/r.db",
        notify_allow_private="true",
        notify_backoff_s=0.05,
        notify_max_attempts=1,
        notify_poll_s=0.05,
    )
    with TestClient(create_app(settings, Hub(settings))) as client:
        body = {**_subscription(site.url("/hook")), "id": "urn:ngsi-ld:Subscription:r"}
        assert client.post(f"{BASE}/subscriptions", json=body).status_code == 201
        assert client.post(f"{BASE}/entities", json=_entity(2)).status_code == 201
        assert _failure_reason(client, body["id"]) == "HTTP 307"
    assert [h[1] for h in site.hits] == ["/hook"]


def test_publish_mqtt_refuses_before_connecting() -> None:
    ok, reason = publish_mqtt("mqtt://127.0.0.1:9/t", {"a": 1}, 1.0, allow_private=False)
    assert not ok and reason is not None
    assert reason.startswith("endpoint refused: 127.0.0.1 is loopback")
    ok, reason = publish_mqtt("mqtt://169.254.169.254/t", {}, 1.0, allow_private=True)
    assert not ok and "metadata" in (reason or "")


def test_notify_allow_private_follows_the_listen_address() -> None:
    assert Settings().notify_private_allowed()  # 127.0.0.1: the single-machine set-up
    assert Settings(host="::1").notify_private_allowed()
    assert not Settings(host="0.0.0.0").notify_private_allowed()
    assert not Settings(host="192.168.1.20").notify_private_allowed()
    assert Settings(host="0.0.0.0", notify_allow_private="true").notify_private_allowed()
    assert not Settings(notify_allow_private="false").notify_private_allowed()
    loaded = Settings.load(
        env={"CITYOS_HOST": "0.0.0.0", "CITYOS_NOTIFY_ALLOW_PRIVATE": "true"}, path=None
    )
    assert loaded.notify_private_allowed()
    with pytest.raises(ValueError, match="notify_allow_private"):
        Settings(notify_allow_private="sometimes").notify_private_allowed()

"""No server-side request forgery: where the hub may connect on a client's say-so.

Two things make the hub open connections to addresses a client chose: remote ``@context``
documents (:mod:`cityos.hub.ldcontext`) and notification endpoints (:mod:`cityos.hub.delivery`).
Neither may reach the hub's own machine or its private network (a database, a cloud
metadata service) unless an operator allows it. The rule is applied to *addresses*, after DNS
resolution: a host is refused if **any** address it resolves to is

* unspecified (``0.0.0.0``, ``::``), multicast or broadcast, or a cloud metadata service
  (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``): always, whatever is allowed;
* loopback, link-local, private (RFC 1918, ``fc00::/7``), shared (``100.64.0.0/10``),
  reserved or documentation ranges, or otherwise not globally routable: unless
  ``allow_private`` (an operator's decision: ``CITYOS_NOTIFY_ALLOW_PRIVATE``,
  ``CITYOS_CONTEXT_ALLOW_PRIVATE_HOSTS``).

IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, IPv4-compatible ``::a.b.c.d``) are judged by that IPv4
address too. The legacy IPv4 spellings (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``)
need no special case for connections: the resolver turns them into the address that is then
checked, and that checked address is the one connected to; :func:`literal_address` reads them
for the checks that happen before any connection (a subscription being created).

DNS rebinding: a check followed by a second, independent resolution at connect time could be
answered differently. :class:`GuardedTransport` and :class:`AsyncGuardedTransport` therefore
resolve and check *inside* the connection step (an httpcore network backend) and connect to
the very addresses they checked; the HTTP ``Host`` header and TLS (SNI and certificate
check) still use the host name. Every new connection is checked, so every redirect hop is.

This guard lives in the hub because it is the hub's own outbound HTTP that it protects and
it depends on nothing above the hub (the standard library, httpx and httpcore only); no
policy of :mod:`cityos.security` decides anything here.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import typing
from collections.abc import Callable, Iterable
from functools import partial
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host name -> whether it may resolve to private addresses
PrivatePolicy = bool | Callable[[str], bool]

DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}

#: metadata services of cloud providers: never a legitimate receiver
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.ip_network("::/96")
_LEGACY_V4 = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


class DestinationError(ValueError):
    """A destination the hub cannot or may not connect to (the message says why)."""


class DestinationRefused(DestinationError):
    """A destination whose address the hub may not reach (loopback, private, ...).

    ``allowable``: an operator could allow it (a private address), as opposed to one that
    is never allowed (metadata, multicast, unspecified)."""

    def __init__(self, message: str, *, allowable: bool = False) -> None:
        super().__init__(message)
        self.allowable = allowable


# ---------------------------------------------------------------------------------------
# judging addresses
# ---------------------------------------------------------------------------------------


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if ip.version != 6:
        return None
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``ip`` may not be connected to (``"loopback"``, ``"private"``, ...), or None."""
    if ip.is_unspecified:
        return "unspecified"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata service"
    if ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "multicast/broadcast"
    inner = _embedded_v4(ip)
    if inner is not None:
        why = address_problem(inner, allow_private=allow_private)
        if why is not None:
            return f"{why} (IPv4 {inner} inside IPv6)"
        if ip.ipv4_mapped is not None:
            return None  # a mapped public IPv4 address is that address
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.version == 4 and ip in _SHARED:
        return "shared address space (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if getattr(ip, "is_site_local", False):
        return "site-local"
    if not ip.is_global:
        return "not globally routable"
    return None


def show(ip: IPAddress) -> str:
    """An address as people write it (``::ffff:127.0.0.1``, not ``::ffff:7f00:1``)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return f"::ffff:{mapped}" if mapped is not None else str(ip)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells without DNS: an IP literal (brackets allowed) or a legacy
    IPv4 form the resolver accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``)."""
    h = host.strip().strip("[]")
    if "%" in h:  # IPv6 zone id (fe80::1%eth0)
        h = h.split("%", 1)[0]
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _LEGACY_V4.match(h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    return None


def _is_localhost_name(host: str) -> bool:
    h = host.lower().rstrip(".")
    return h == "localhost" or h.endswith(".localhost")  # RFC 6761: always loopback


def literal_problem(host: str, *, allow_private: bool) -> str | None:
    """The refusal reason for a host that needs no DNS to judge (an IP literal, ``localhost``),
    or None: used where resolving would be wrong or slow (validating a subscription)."""
    if _is_localhost_name(host):
        return None if allow_private else "loopback (localhost)"
    ip = literal_address(host)
    if ip is None:
        return None
    why = address_problem(ip, allow_private=allow_private)
    return None if why is None else f"{show(ip)} is {why}"


def is_loopback_host(host: str) -> bool:
    """Whether a listen address only accepts connections from this machine."""
    if _is_localhost_name(host):
        return True
    ip = literal_address(host)
    return ip is not None and ip.is_loopback


# ---------------------------------------------------------------------------------------
# resolving and checking
# ---------------------------------------------------------------------------------------


def _allows(policy: PrivatePolicy, host: str) -> bool:
    return policy(host) if callable(policy) else bool(policy)


def resolve_checked(host: str, port: int, *, allow_private: PrivatePolicy) -> list[IPAddress]:
    """Every address ``host`` resolves to, after checking them all (DestinationRefused if any
    one is refused: a host that also resolves to a private address is not trusted)."""
    host = host.strip("[]")
    if not host:
        raise DestinationError("no host to connect to")
    private_ok = _allows(allow_private, host)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationError(f"host {host!r} cannot be resolved: {exc}") from None
    seen: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip in seen:
            continue
        never = address_problem(ip, allow_private=True)
        why = never or address_problem(ip, allow_private=private_ok)
        if why is not None:
            shown = show(ip)
            shown = host if shown == host else f"{host} resolves to {shown}, which"
            raise DestinationRefused(f"{shown} is {why}: refused", allowable=never is None)
        seen.append(ip)
    if not seen:
        raise DestinationError(f"host {host!r} has no address")
    return seen


def check_destination(url: str, *, allow_private: PrivatePolicy) -> None:
    """Raise DestinationRefused (or DestinationError) unless every address the host of
    ``url`` resolves to may be connected to. ``allow_private`` is a bool, or a function of
    the host name (a per-host allowlist)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise DestinationError(f"{url!r} has no host")
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    except ValueError as exc:
        raise DestinationError(f"{url!r}: {exc}") from None
    resolve_checked(host, port, allow_private=allow_private)


# ---------------------------------------------------------------------------------------
# httpx transports that connect only to checked addresses
# ---------------------------------------------------------------------------------------


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, allow_private: PrivatePolicy) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_checked(host, port, allow_private=self.allow_private)
        last: Exception | None = None
        for ip in addresses:  # the checked addresses, and only those
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last


class _AsyncGuardedBackend(httpcore.AnyIOBackend):
    def __init__(self, allow_private: PrivatePolicy) -> None:
        self.allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        import anyio.to_thread

        addresses = await anyio.to_thread.run_sync(
            partial(resolve_checked, host, port, allow_private=self.allow_private)
        )
        last: Exception | None = None
        for ip in addresses:
            try:
                return await super().connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last


def _pool_kwargs(verify: bool, limits: httpx.Limits) -> dict[str, typing.Any]:
    return {
        "ssl_context": httpx.create_ssl_context(verify=verify),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection goes to a resolved *and checked* address.

    A refused destination raises :class:`DestinationRefused` (not an httpx error) out of
    ``client.send``; an unresolvable one :class:`DestinationError`. No proxy is used."""

    def __init__(
        self,
        *,
        allow_private: PrivatePolicy = False,
        verify: bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            network_backend=_GuardedBackend(allow_private), **_pool_kwargs(verify, limits)
        )


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """The asyncio counterpart of :class:`GuardedTransport` (resolution runs in a thread)."""

    def __init__(
        self,
        *,
        allow_private: PrivatePolicy = False,
        verify: bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_AsyncGuardedBackend(allow_private), **_pool_kwargs(verify, limits)
        )


def pinned_address(
    host: str, port: int, *, allow_private: PrivatePolicy
) -> IPAddress:  # for clients that are not httpx (MQTT)
    """The first checked address of ``host``: connect to this, not to the name."""
    return resolve_checked(host, port, allow_private=allow_private)[0]

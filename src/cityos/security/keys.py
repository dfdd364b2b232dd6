"""API keys for devices and services: ``cok_<id>_<secret>``, stored only as a hash.

The id (16 hex digits) finds the key's registry document (kind ``apikey`` in the default
tenant's registry); the secret is 32 random bytes (256 bits, URL-safe base64). The document
keeps ``sha256(<id>:<secret>)``, compared in constant time. A fast hash is enough here, and
argon2 would only cost every request ~50 ms: slow hashes protect *guessable* secrets
(passwords) by making each guess expensive, but a 256-bit random secret cannot be guessed
at any speed (2^255 tries on average), so a stolen database still yields no usable key.

A key is scoped to tenants and roles, may expire, and is revoked (not deleted) so that a
refused request can say why. ``kind`` is ``service`` or ``device``; a device key is bound
to one service group (its FIWARE ``apikey``, which stays the public MQTT topic / ``k=``
key) in one tenant, and optionally to one device. Documents::

    {"id": "3f9a0c1b2d4e5f60", "name": "bus-feed", "hash": "sha256:…",
     "tenants": ["phnom-penh"], "roles": ["transit-operator"], "kind": "service",
     "created": 1767225600.0, "expires": 1769817600.0, "revoked": null,
     "service_group": null, "device_id": null}
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cityos.hub.store.base import DEFAULT_TENANT, Store
from cityos.security.principal import (
    AuthError,
    Principal,
    clean_roles,
    clean_tenants,
    tenant_label,
)

APIKEY = "apikey"
PREFIX = "cok_"
OWN_ISSUER = "cityos"
_KEY = re.compile(r"cok_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SHORT = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ApiKeyError(ValueError):
    """An API key that cannot be made or found, with the reason."""


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``1h``, ``30d``, ``2w`` or ISO 8601 (``P30D``, ``PT1H``)."""
    text = text.strip()
    m = _SHORT.fullmatch(text)
    if m:
        seconds = float(int(m.group(1)) * _UNITS[m.group(2)])
    else:
        from cityos.hub.temporal import parse_duration as iso_duration

        try:
            seconds = iso_duration(text).total_seconds()
        except Exception:
            raise ValueError(f"{text!r} is not a duration (90s, 15m, 1h, 30d, P30D)") from None
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def hash_secret(key_id: str, secret: str) -> str:
    return "sha256:" + hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


def parse_key(text: str) -> tuple[str, str] | None:
    m = _KEY.fullmatch(text.strip())
    return (m.group(1), m.group(2)) if m else None


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "hash"}


def create_key(
    store: Store,
    *,
    tenants: list[str],
    roles: list[str],
    name: str = "",
    expires_in_s: float | None = None,
    service_group: str | None = None,
    device_id: str | None = None,
    now: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """Make a key; returns the key (shown once, never stored) and its document (no hash).

    With ``service_group`` (a service group's FIWARE apikey) the key is a device key for
    that group in its one tenant, which must exist (provision the group first)."""
    try:
        tenant_list, role_list = clean_tenants(tenants), clean_roles(roles)
    except ValueError as exc:
        raise ApiKeyError(str(exc)) from None
    if not role_list:
        raise ApiKeyError("give at least one role")
    if len(name) > 128:
        raise ApiKeyError("a key's name has at most 128 characters")
    if device_id is not None and service_group is None:
        raise ApiKeyError("a key bound to a device id needs its service group (--device APIKEY)")
    kind = "service"
    if service_group is not None:
        from cityos.hub.registry import DEVICE, GROUP

        if len(tenant_list) != 1 or tenant_list[0] == "*":
            raise ApiKeyError("a device key belongs to exactly one tenant (the service group's)")
        tenant = tenant_list[0]
        if store.get_doc(GROUP, tenant, service_group) is None:
            raise ApiKeyError(
                f"no service group with apikey {service_group!r} in tenant "
                f"{tenant_label(tenant)!r}: provision it first"
            )
        if device_id is not None:
            device = store.get_doc(DEVICE, tenant, device_id)
            if device is None or device.get("apikey") not in (None, service_group):
                raise ApiKeyError(f"no device {device_id!r} in that service group")
        kind = "device"
    created = time.time() if now is None else now
    while True:
        key_id = secrets.token_hex(8)
        if store.get_doc(APIKEY, DEFAULT_TENANT, key_id) is None:
            break
    secret = secrets.token_urlsafe(32)
    doc = {
        "id": key_id,
        "name": name,
        "hash": hash_secret(key_id, secret),
        "tenants": tenant_list,
        "roles": role_list,
        "kind": kind,
        "created": created,
        "expires": created + expires_in_s if expires_in_s else None,
        "revoked": None,
        "revoked_reason": None,
        "service_group": service_group,
        "device_id": device_id,
    }
    store.put_doc(APIKEY, DEFAULT_TENANT, key_id, doc)
    return f"{PREFIX}{key_id}_{secret}", public(doc)


def list_keys(store: Store, tenant: str | None = None) -> list[dict[str, Any]]:
    """All keys (without hashes), or those that reach ``tenant``."""
    docs = [public(d) for d in store.list_docs(APIKEY, DEFAULT_TENANT)]
    if tenant is not None:
        docs = [d for d in docs if tenant in d["tenants"] or "*" in d["tenants"]]
    return docs


def revoke_key(
    store: Store, key_id: str, reason: str = "", *, now: float | None = None
) -> dict[str, Any] | None:
    """Mark a key revoked (kept, so a refusal can say why); None if there is no such key.
    Every worker refuses it within ``auth_recheck_s``."""
    doc = store.get_doc(APIKEY, DEFAULT_TENANT, key_id)
    if doc is None:
        return None
    if doc.get("revoked") is None:
        doc["revoked"] = time.time() if now is None else now
        doc["revoked_reason"] = reason or None
        store.put_doc(APIKEY, DEFAULT_TENANT, key_id, doc)
    return public(doc)


def key_status(doc: dict[str, Any], now: float | None = None) -> str:
    if doc.get("revoked") is not None:
        return "revoked"
    expires = doc.get("expires")
    if expires is not None and expires <= (time.time() if now is None else now):
        return "expired"
    return "active"


class ApiKeyBook:
    """Verifies API keys against the store, keeping each key's document for ``recheck_s``
    (so a request costs a hash and a compare, not a query; a revocation reaches every
    worker within ``recheck_s``). Unknown ids are remembered as well, bounded (LRU)."""

    def __init__(
        self,
        store: Store,
        *,
        recheck_s: float = 5.0,
        size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.recheck_s = recheck_s
        self.size = size
        self.clock = clock
        self._docs: OrderedDict[str, tuple[float, dict[str, Any] | None, Principal | None]] = (
            OrderedDict()
        )
        # whole key text -> (good until, principal): a key seen good within recheck_s skips
        # the parse, the hash and the compare (read without the lock: one dict lookup)
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def forget(self, key_id: str | None = None) -> None:
        with self._lock:
            self._verified.clear()
            if key_id is None:
                self._docs.clear()
            else:
                self._docs.pop(key_id, None)

    def _doc(self, key_id: str, now: float) -> tuple[dict[str, Any] | None, Principal | None]:
        with self._lock:
            hit = self._docs.get(key_id)
            if hit is not None and hit[0] > now:
                self._docs.move_to_end(key_id)
                return hit[1], hit[2]
        doc = self.store.get_doc(APIKEY, DEFAULT_TENANT, key_id)
        principal = _principal(doc) if doc is not None else None
        with self._lock:
            self._docs[key_id] = (now + self.recheck_s, doc, principal)
            self._docs.move_to_end(key_id)
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)
        return doc, principal

    def cached(self, key: str) -> Principal | None:
        """The principal if the key's document is in memory and the key is good now; None
        otherwise (:meth:`verify` then reads the store, or says why the key is refused)."""
        seen = self._verified.get(key)
        if seen is not None and seen[0] > self.clock():
            return seen[1]
        parsed = parse_key(key)
        if parsed is None:
            return None
        now = self.clock()
        hit = self._docs.get(parsed[0])
        if hit is None or hit[0] <= now:
            return None
        try:
            return self.verify(key)
        except AuthError:
            return None

    def verify(self, key: str) -> Principal:
        """The principal a key stands for, or AuthError saying why not."""
        parsed = parse_key(key)
        if parsed is None:
            raise AuthError("not a CityOS API key (cok_<id>_<secret>)")
        key_id, secret = parsed
        now = self.clock()
        doc, principal = self._doc(key_id, now)
        if (
            doc is None
            or principal is None
            or not hmac.compare_digest(
                doc.get("hash", "").encode(), hash_secret(key_id, secret).encode()
            )
        ):
            raise AuthError(f"API key {key_id} is not valid")
        if doc.get("revoked") is not None:
            why = f": {doc['revoked_reason']}" if doc.get("revoked_reason") else ""
            raise AuthError(f"API key {key_id} was revoked{why}")
        expires = doc.get("expires")
        if expires is not None and expires <= now:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
            raise AuthError(f"API key {key_id} expired at {when}")
        good_until = now + self.recheck_s if expires is None else min(now + self.recheck_s, expires)
        with self._lock:
            if len(self._verified) >= self.size:
                self._verified.pop(next(iter(self._verified)))
            self._verified[key] = (good_until, principal)
        return principal


def _principal(doc: dict[str, Any]) -> Principal:
    return Principal(
        subject=f"key:{doc['id']}",
        tenants=frozenset(doc["tenants"]),
        roles=frozenset(doc["roles"]),
        kind=doc.get("kind", "service"),
        token_id=doc["id"],
        issuer=OWN_ISSUER,
        expires_at=doc.get("expires"),
        service_group=doc.get("service_group"),
        device_id=doc.get("device_id"),
    )

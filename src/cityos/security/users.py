"""CityOS's own users, for deployments without an identity provider.

A user is a registry document (kind ``user`` in the default tenant's registry, keyed by
name), so both engines keep them without a migration::

    {"name": "sokha", "password": "$argon2id$v=19$m=65536,t=3,p=4$…",
     "tenants": ["phnom-penh"], "roles": ["traffic-engineer"],
     "created": 1767225600.0, "stamp": "9f2c…"}

Passwords are hashed with argon2id (argon2-cffi's defaults: 64 MiB, 3 passes, 4 lanes);
the plaintext is never stored. ``stamp`` is random and new on every add or replace; the
tokens CityOS issues carry it, so replacing a user (new password, tenants or roles) or
removing and adding it again ends the tokens it held.

A hash costs 64 MiB and ~50 ms of a core, so logins go through a :class:`LoginGate`: a few
hashes at once, a short queue, a couple in flight per client; a login beyond that is refused
before any hashing (a flood of wrong passwords once took the hub from 100 MB to 2.6 GB).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cityos.hub.store.base import DEFAULT_TENANT, Store
from cityos.security.principal import clean_roles, clean_tenants

USER = "user"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_hasher = PasswordHasher()  # argon2id
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


class UserError(ValueError):
    """A user that cannot be added or found, with the reason."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise UserError(
            f"user name {name!r}: 1-64 letters, digits and '._@-', starting with a letter or digit"
        )
    return name


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password may have at most {MAX_PASSWORD} characters")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A user document without its password hash (for listings)."""
    return {k: v for k, v in doc.items() if k != "password"}


def get_user(store: Store, name: str) -> dict[str, Any] | None:
    return store.get_doc(USER, DEFAULT_TENANT, name)


def add_user(
    store: Store,
    name: str,
    password: str,
    *,
    tenants: list[str],
    roles: list[str],
    replace: bool = False,
) -> dict[str, Any]:
    """Add (or with ``replace``, replace) a user; returns the document without its hash."""
    check_name(name)
    check_password_rules(password)
    try:
        tenant_list, role_list = clean_tenants(tenants), clean_roles(roles)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    old = get_user(store, name)
    if old is not None and not replace:
        raise UserError(f"user {name!r} exists (use --replace to change it)")
    now = time.time()
    doc = {
        "name": name,
        "password": _hasher.hash(password),
        "tenants": tenant_list,
        "roles": role_list,
        "created": old["created"] if old else now,
        "stamp": secrets.token_hex(8),
    }
    store.put_doc(USER, DEFAULT_TENANT, name, doc)
    return public(doc)


def list_users(store: Store) -> list[dict[str, Any]]:
    return [public(d) for d in store.list_docs(USER, DEFAULT_TENANT)]


def remove_user(store: Store, name: str) -> bool:
    """Remove a user; the tokens it holds are refused within ``auth_recheck_s``."""
    return store.delete_doc(USER, DEFAULT_TENANT, name)


def check_password(store: Store, name: str, password: str) -> dict[str, Any] | None:
    """The user document when ``password`` is right, else None. An unknown user costs one
    argon2 verification as well, so timing does not tell which names exist."""
    doc = get_user(store, name) if _NAME.fullmatch(name or "") else None
    if doc is None or len(password) > MAX_PASSWORD:
        _verify_dummy(password[:MAX_PASSWORD])
        return None
    try:
        _hasher.verify(doc["password"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(doc["password"]):  # the parameters were raised since
        doc = {**doc, "password": _hasher.hash(password)}
        store.put_doc(USER, DEFAULT_TENANT, name, doc)
    return doc


def _verify_dummy(password: str) -> None:
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash("cityos-no-such-user")
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy_hash, password)


class LoginGate:
    """Bounds the argon2 work logins may cause: at most ``concurrent`` hashes run at once,
    ``queue`` more may wait, and one client may have ``per_client`` logins in flight.

    :meth:`admit` decides at once, without hashing or blocking, so a refused login costs
    next to nothing; :meth:`hashing` (in a worker thread) waits for a hashing slot. Both
    paths of :func:`check_password` (known and unknown users) pass the same gate, so a
    refusal says nothing about which names exist."""

    def __init__(self, concurrent: int, queue: int, per_client: int) -> None:
        self.concurrent = max(1, concurrent)
        self.limit = self.concurrent + max(0, queue)
        self.per_client = max(1, per_client)
        self._slots = threading.BoundedSemaphore(self.concurrent)
        self._lock = threading.Lock()
        self._admitted = 0
        self._by_client: dict[str, int] = {}

    def admit(self, client: str) -> str | None:
        """None when the login may go on (then :meth:`release` it), else why not:
        ``client`` (this client has enough in flight) or ``busy`` (the queue is full)."""
        with self._lock:
            if self._by_client.get(client, 0) >= self.per_client:
                return "client"
            if self._admitted >= self.limit:
                return "busy"
            self._admitted += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
            return None

    def release(self, client: str) -> None:
        with self._lock:
            self._admitted -= 1
            left = self._by_client.pop(client, 1) - 1
            if left > 0:
                self._by_client[client] = left

    @contextlib.contextmanager
    def hashing(self) -> Iterator[None]:
        """Hold one of the ``concurrent`` hashing slots (blocks this worker thread)."""
        with self._slots:
            yield

    @property
    def in_flight(self) -> int:
        return self._admitted


_gates: dict[tuple[int, int, int], LoginGate] = {}
_gates_lock = threading.Lock()


def login_gate(concurrent: int, queue: int, per_client: int) -> LoginGate:
    """The process's gate for these limits (hashing memory is a per-process budget)."""
    key = (concurrent, queue, per_client)
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = LoginGate(concurrent, queue, per_client)
        return gate

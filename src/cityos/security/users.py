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
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
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

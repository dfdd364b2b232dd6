"""Who a request is: the :class:`Principal` authentication hands to authorisation, the 401
error, and the spelling rules of tenants and roles shared by users, tokens and API keys.

A principal's ``tenants`` hold the store's tenant names: ``""`` is the default tenant (no
``NGSILD-Tenant`` header), written ``@default`` where an empty string cannot be (the CLI, a
space-separated claim); ``*`` means every tenant (a platform administrator).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cityos.hub.errors import NgsiLdError

ALL_TENANTS = "*"
DEFAULT_ALIAS = "@default"
Kind = Literal["user", "service", "device"]
KINDS = ("user", "service", "device")

_TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ROLE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. Immutable (shared between requests by the caches)."""

    subject: str  # a user's name or the IdP's "sub"; "key:<id>" for an API key
    tenants: frozenset[str]  # store tenant names ("" = default); "*" = every tenant
    roles: frozenset[str]
    kind: Kind = "user"
    token_id: str | None = None  # the JWT's "jti", or the API key's id
    issuer: str = ""  # "cityos" for CityOS's own tokens and keys, else the IdP's "iss"
    expires_at: float | None = None  # epoch seconds; None: does not expire
    service_group: str | None = None  # device keys: the service group's apikey they serve
    device_id: str | None = None  # device keys bound to one device

    @property
    def platform_admin(self) -> bool:
        return ALL_TENANTS in self.tenants

    def in_tenant(self, tenant: str) -> bool:
        """Whether this principal may act in ``tenant`` at all (roles decide what)."""
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    def may_send_as_device(self, tenant: str, apikey: str, device_id: str) -> bool:
        """Whether this principal may send measures / command results for ``device_id`` of
        the service group ``apikey`` in ``tenant`` (the device ingest path's check)."""
        if self.kind != "device":
            return self.platform_admin  # an operator may replay a device's data
        return (
            self.service_group == apikey
            and self.in_tenant(tenant)
            and (self.device_id is None or self.device_id == device_id)
        )


class AuthError(NgsiLdError):
    """Credentials that do not authenticate: HTTP 401 with a ``WWW-Authenticate`` challenge
    (RFC 6750). ``error`` is None when no credentials were sent at all."""

    type_name = "Unauthorized"
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(detail)
        self.error = error

    @property
    def type_uri(self) -> str:  # NGSI-LD defines no 401 type
        return "urn:cityos:errors:Unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="cityos"'
        if self.error:
            safe = self.detail.replace("\\", "").replace('"', "'")
            challenge += f', error="{self.error}", error_description="{safe}"'
        return {"WWW-Authenticate": challenge}


class IdentityUnavailable(NgsiLdError):
    """The identity provider's keys cannot be had (HTTP 503): not the caller's fault."""

    type_name = "ServiceUnavailable"
    status = 503
    title = "Identity provider unavailable"

    @property
    def type_uri(self) -> str:
        return "urn:cityos:errors:IdentityUnavailable"


def tenant_name(text: str) -> str:
    """A tenant as given on the command line or in a claim, as the store names it."""
    text = text.strip()
    if text in (DEFAULT_ALIAS, ""):
        return ""
    if text == ALL_TENANTS or _TENANT.fullmatch(text):
        return text
    raise ValueError(
        f"tenant {text!r}: use letters, digits, '_' and '-' (max 64), {DEFAULT_ALIAS} for the "
        f"default tenant or {ALL_TENANTS} for all"
    )


def tenant_label(tenant: str) -> str:
    return tenant if tenant else DEFAULT_ALIAS


def clean_tenants(values: Iterable[str]) -> list[str]:
    out = sorted({tenant_name(v) for v in values})
    if not out:
        raise ValueError("give at least one tenant")
    return out


def clean_roles(values: Iterable[str]) -> list[str]:
    out = sorted({v.strip() for v in values})
    for role in out:
        if not _ROLE.fullmatch(role):
            raise ValueError(f"role {role!r}: use letters, digits and '_.:-' (max 64)")
    return out

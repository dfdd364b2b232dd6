"""Which tenant a request acts in: one answer for every layer.

A request may name its tenant with ``NGSILD-Tenant`` (NGSI-LD) or ``fiware-service`` (the
FIWARE IoT Agent API, and NGSI-v2 clients), on any route. The door (authentication and the
roles), the NGSI-LD handlers, the IoT Agent routes, the audit log and attack detection all
ask :func:`tenant_of_headers`, so no layer can act in a tenant another layer did not check.
Headers that name different tenants (the two headers, or one header twice) are refused with
400: guessing which one was meant is how a credential for one tenant ends up in another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cityos.hub.errors import BadRequestData

TENANT_HEADERS = (b"ngsild-tenant", b"fiware-service")
MAX_TENANT_LENGTH = 64
TENANT_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TENANT_LENGTH}}}")


class TenantConflict(BadRequestData):
    """The request names more than one tenant."""

    def __init__(self, detail: str, tenants: list[str]) -> None:
        super().__init__(detail)
        self.tenants = tenants


def tenant_values(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every tenant the request's headers name, in order, duplicates kept (ASGI header
    names are lower case)."""
    return [value.decode("latin-1").strip() for name, value in headers if name in TENANT_HEADERS]


def decide_tenant(values: list[str]) -> str:
    """The one tenant these header values name ("" for none: the default tenant); 400 when
    they disagree or a name is not a tenant name."""
    if len(values) < 2:  # the usual request: one header or none
        tenant = values[0] if values else ""
        check_tenant_name(tenant)
        return tenant
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        names = ", ".join(repr(v) for v in distinct)
        raise TenantConflict(
            f"the request names more than one tenant ({names}) in NGSILD-Tenant / "
            "fiware-service: send one tenant, in one header",
            distinct,
        )
    tenant = distinct[0] if distinct else ""
    check_tenant_name(tenant)
    return tenant


def tenant_of_headers(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's tenant from its raw (ASGI) headers; see :func:`decide_tenant`."""
    return decide_tenant(tenant_values(headers))


def check_tenant_name(tenant: str) -> None:
    if tenant and TENANT_NAME.fullmatch(tenant) is None:
        raise BadRequestData(
            f"tenant {tenant[:80]!r}: use letters, digits, '_' and '-' "
            f"(at most {MAX_TENANT_LENGTH})"
        )

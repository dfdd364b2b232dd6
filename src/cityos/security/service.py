"""Identity and the audit log as parts of CityOS, declared through the plug like every
service: their routes and OpenAPI, their CLI groups, their background work, health and
checks. (Authentication, the roles and the door itself wrap the whole application and are
installed by the web app; what plugs in here is what these parts serve and run.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cityos.hub.api.openapi import PROBLEM_REF, simple_get
from cityos.plug import Check, Service, ServiceContext
from cityos.security import audit, tokens
from cityos.security.audit.cli import app as audit_cli
from cityos.security.cli import keys_app, token_app, users_app

# -- identity ----------------------------------------------------------------------------


def _identity_openapi() -> dict[str, dict[str, Any]]:
    form = {
        "type": "object",
        "required": ["grant_type", "username", "password"],
        "properties": {
            "grant_type": {"const": "password"},
            "username": {"type": "string", "maxLength": 128},
            "password": {"type": "string", "maxLength": 1024},
        },
    }
    oauth_error = {"application/json": {"schema": {"type": "object"}}}
    return {
        "/auth/token": {
            "post": {
                "summary": "A CityOS token for a user's name and password (RFC 6749, 4.3)",
                "operationId": "post_auth_token",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": form},
                        "application/json": {"schema": form},
                    },
                },
                "responses": {
                    "200": {
                        "description": "The token",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": {
                        "description": "invalid_request, invalid_grant",
                        "content": oauth_error,
                    },
                    "401": {"description": "Wrong name or password", "content": oauth_error},
                    "429": {
                        "description": "Too many logins from this client",
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    },
                    "503": {
                        "description": "Too many logins at once; retry after Retry-After",
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    },
                },
            }
        },
        "/auth/jwks.json": simple_get("/auth/jwks.json", "CityOS's token-verification keys (JWKS)"),
    }


def identity_health(ctx: ServiceContext) -> dict[str, Any]:
    core = ctx.core
    issuers = ["cityos"] + ([core.jwt_issuer] if core.jwt_issuer else [])
    return {"status": "ok", "auth_required": core.auth_required, "issuers": issuers}


def _key_file(name: str, path: str) -> Check:
    """A key file CityOS makes on first use: there and private, or its folder writable."""
    file = Path(path)
    if file.exists():
        mode = file.stat().st_mode & 0o777
        if mode & 0o077:
            return Check(
                name, False, f"{path} is readable by others (mode {mode:o})", f"chmod 600 {path}"
            )
        return Check(name, True, f"{path} (mode {mode:o})")
    folder = file.parent if str(file.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if os.access(folder, os.W_OK):
        return Check(name, True, f"{path} will be made on first use")
    return Check(name, False, f"{path} is missing and {folder} is not writable", "fix the path")


def identity_diagnostics(ctx: ServiceContext) -> Iterator[Check]:
    core = ctx.core
    yield _key_file("token signing key", core.token_key_path)
    if core.jwt_issuer and not (core.jwks_url or core.jwks_path):
        yield Check(
            "external issuer", False, f"jwt_issuer {core.jwt_issuer!r} has no keys",
            "set jwks_url (the issuer's JWKS) or jwks_path",
        )  # fmt: skip
    elif core.jwt_issuer:
        source = core.jwks_url or core.jwks_path
        try:
            jwks = tokens.JwksKeys(
                url=core.jwks_url, path=core.jwks_path, allow_hosts=core.jwks_allow_hosts
            )
            yield Check("external issuer", True, f"{source}: {len(jwks.keys())} key(s)")
        except Exception as exc:  # unreachable, not JSON, not a JWKS, a refused URL
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            yield Check("external issuer", False, f"{source}: {detail}", "fix jwks_url / jwks_path")
    if core.auth_required:
        yield Check("authentication", True, "required on every route but the open ones")
    else:
        yield Check(
            "authentication", True,
            "not required (auth_required=false): anyone who reaches the port acts as the hub",
            "set CITYOS_AUTH_REQUIRED=true before the hub leaves this machine",
        )  # fmt: skip


IDENTITY = Service(
    name="identity",
    routes=tokens.routes,
    openapi=_identity_openapi,
    cli={"users": users_app, "token": token_app, "keys": keys_app},
    health=identity_health,
    diagnostics=identity_diagnostics,
    stage=10,
    builtin=True,
)

# -- the audit log (and attack detection, which reads the same stream) -------------------


async def run_audit(ctx: ServiceContext) -> None:
    """Record what the door saw, sign tree heads, run detection; on stop, detection's last
    events and then the last audit records of this worker (so nothing is lost)."""
    state = ctx.app
    tasks = [
        asyncio.create_task(state.recorder.run()),
        asyncio.create_task(audit.run_signer(state.audit, ctx.core.audit_sign_interval_s)),
    ]
    if state.detector is not None:
        tasks.append(asyncio.create_task(state.detector.run()))
    try:
        await asyncio.Event().wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if state.detector is not None:
            await asyncio.to_thread(state.detector.process)
        await asyncio.to_thread(state.recorder.flush)


def audit_health(ctx: ServiceContext) -> dict[str, Any]:
    log = ctx.app.audit
    head = log.latest_head()
    body: dict[str, Any] = {"status": "ok", "entries": log.size()}
    if head is not None:
        body["signed_size"] = head.tree_size
        body["signed_age_s"] = round(max(0.0, time.time() - head.timestamp / 1000), 1)
    return body


def audit_diagnostics(ctx: ServiceContext) -> Iterator[Check]:
    yield _key_file("audit signing key", ctx.core.audit_key_path)
    if ctx.core.audit_sign_interval_s <= 0:
        yield Check(
            "audit signing", False, "audit_sign_interval_s <= 0: no tree head is ever signed",
            "set CITYOS_AUDIT_SIGN_INTERVAL_S=60",
        )  # fmt: skip


def _audit_openapi() -> dict[str, dict[str, Any]]:
    def with_params(path: str, summary: str, names: tuple[str, ...]) -> dict[str, Any]:
        item = simple_get(path, summary)
        item["get"]["parameters"] = [
            {"name": n, "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0}}
            for n in names
        ]  # fmt: skip
        item["get"]["responses"]["400"] = {
            "description": "A parameter out of range",
            "content": {"application/problem+json": {"schema": PROBLEM_REF}},
        }
        return item

    return {
        "/audit/head": with_params("/audit/head", "The latest signed tree head", ()),
        "/audit/key": with_params("/audit/key", "The log's public key (PEM) and id", ()),
        "/audit/entries": with_params(
            "/audit/entries", "Entries [start, end) with their leaf hashes", ("start", "end")
        ),
        "/audit/proof/inclusion": with_params(
            "/audit/proof/inclusion", "An inclusion proof (RFC 9162)", ("index", "size")
        ),
        "/audit/proof/consistency": with_params(
            "/audit/proof/consistency", "A consistency proof (RFC 9162)", ("first", "second")
        ),
    }


AUDIT = Service(
    name="audit",
    routes=audit.routes,
    openapi=_audit_openapi,
    cli=audit_cli,
    tasks=(run_audit,),
    health=audit_health,
    diagnostics=audit_diagnostics,
    stage=0,
    builtin=True,
)

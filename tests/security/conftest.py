"""A hub with authentication on, on each engine: what the security tests stand on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from cityos.config import Settings
from cityos.hub.core import Hub
from cityos.security.keys import create_key


@dataclass
class Secured:
    """A served app with authentication on, its hub, and keys for its roles."""

    client: TestClient
    hub: Hub

    def key(self, role: str, tenant: str = "city", tenants: list[str] | None = None) -> dict:
        """Headers of a new API key with ``role`` for ``tenants`` (default: ``tenant``),
        naming ``tenant``."""
        secret = create_key(self.hub.store, tenants=tenants or [tenant], roles=[role])[0]
        headers = {"Authorization": f"ApiKey {secret}"}
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        return headers


MakeSecured = Callable[..., Secured]


def payments_environ(tmp_path, url: str | None = None, schema: str | None = None) -> dict[str, str]:
    """The payments service's settings for a test app (``Settings(environ=...)``): its
    ledger, ticket key and pseudonym key in the test's own places (by default they would
    land in the repository's data/); on PostgreSQL (``url``) the ledger's tables go in the
    test's throwaway ``schema``, dropped with it. Its background task stays idle."""
    return {
        "CITYOS_PAYMENTS_DATABASE_URL": url or f"sqlite:///{tmp_path}/ledger.db",
        **({"CITYOS_PAYMENTS_DATABASE_SCHEMA": schema} if url and schema else {}),
        "CITYOS_PAYMENTS_TICKET_KEY_PATH": str(tmp_path / "payments-ticket.pem"),
        "CITYOS_PAYMENTS_PSEUDONYM_KEY_PATH": str(tmp_path / "payments-pseudonym.key"),
        "CITYOS_PAYMENTS_PUBLISH_INTERVAL_S": "0",
    }


def close_payments(client: TestClient) -> None:
    """Close the payments ledger's connections if a request opened them (the app's
    shutdown leaves them open)."""
    ctx = client.app.state.services.get("payments")
    parts = ctx.state.pop("payments", None) if ctx is not None else None
    if parts is not None:
        parts.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def secured(request: pytest.FixtureRequest, tmp_path) -> Iterator[MakeSecured]:
    """``secured(rules=None, schema=None, **settings)``: the app served with authentication
    on (the rules file ``rules``, else the example roles), on SQLite or on PostgreSQL (a
    throwaway schema, or ``schema`` to serve one a test made before). Key files, the rate
    limit and detection are set for tests; ``settings`` override any of it."""
    from cityos.web.app import create_app

    stack = ExitStack()
    schemas: set[str] = set()

    def make(rules: dict[str, Any] | None = None, schema: str | None = None, **settings: Any):
        if rules is not None:
            path = tmp_path / f"rules-{uuid.uuid4().hex[:6]}.json"
            path.write_text(json.dumps(rules))
            settings.setdefault("policy_path", str(path))
        store = engine_store(request, tmp_path, schema, schemas)
        pg = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
        config = Settings(
            **{
                "auth_required": True,
                "token_key_path": str(tmp_path / "key.pem"),
                "audit_key_path": str(tmp_path / "audit.pem"),
                "rate_per_s": 0,
                # the payments ledger beside the hub's tables (its schema on PostgreSQL)
                "environ": payments_environ(tmp_path, pg, getattr(store, "schema", None)),
                **settings,
            }
        )
        hub = Hub(config, store=store)
        client = TestClient(create_app(config, hub), raise_server_exceptions=False)
        stack.callback(close_payments, client)  # after the client's shutdown (LIFO)
        return Secured(stack.enter_context(client), hub)

    yield make
    stack.close()
    if schemas:
        from cityos.hub.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        for schema in schemas:
            PostgresStore(url, schema=schema).drop_schema()


def engine_store(
    request: pytest.FixtureRequest, tmp_path, schema: str | None, made: set[str]
) -> Any:
    """A store on the engine of ``request.param``; ``schema`` names the database (a file
    name on SQLite, a schema on PostgreSQL) so that two apps can serve the same one."""
    name = schema or f"cityos_test_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        from cityos.hub.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / f"{name}.db")
    from cityos.hub.store.postgres import PostgresStore

    made.add(name)
    return PostgresStore(request.getfixturevalue("postgres_url"), schema=name)

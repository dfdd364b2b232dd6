"""The security path's parts, each timed alone, in process (what docs/security.md quotes):

    .venv/bin/python benchmarks/security_parts.py [--out benchmarks/results]

- a policy decision, cached and not (Casbin evaluates every rule);
- ``authenticate`` of a CityOS token and of an API key once cached, and a token's first
  check (its signature);
- audit appends, one by one and in batches of 100, on SQLite and PostgreSQL;
- feeding the attack detector one request (what the door pays per request).

Writes ``security-parts.json``; the end-to-end cost is ``benchmarks/security.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def per_call_us(fn: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return round((time.perf_counter() - start) / n * 1e6, 2)


def policy_costs() -> dict[str, float]:
    from cityos.hub.ldcontext import core_context
    from cityos.security.policy import EXAMPLE_ROLES, Policy

    ctx = core_context()
    flow = ctx.expand_term("TrafficFlowObserved")
    cold = Policy(EXAMPLE_ROLES, ctx)
    attrs = [ctx.expand_term(f"a{i}") for i in range(2000)]  # new keys: every call misses
    uncached = per_call_us(
        lambda i: cold.allowed(["traffic-engineer"], "t", "write", etype=flow, attr=attrs[i]),
        2000,
    )
    cached = per_call_us(
        lambda i: cold.allowed(["traffic-engineer"], "t", "write", etype=flow, attr=attrs[0]),
        20000,
    )
    return {"decision_uncached_us": uncached, "decision_cached_us": cached}


def auth_costs(tmp: Path) -> dict[str, float]:
    from cityos.config import Settings
    from cityos.hub.store.sqlite import SqliteStore
    from cityos.security.identity import authenticate
    from cityos.security.keys import create_key
    from cityos.security.tokens import issue_token, own_key
    from cityos.security.users import add_user

    store = SqliteStore(tmp / "auth.db")
    store.migrate()
    settings = Settings(token_key_path=str(tmp / "token.pem"))
    user = add_user(store, "dara", "a long enough password", tenants=["city"], roles=["r"])
    key = own_key(settings.token_key_path)
    tokens = [issue_token(key, user, 3600)[0] for _ in range(200)]
    first = per_call_us(
        lambda i: authenticate({"authorization": f"Bearer {tokens[i]}"}, settings, store), 200
    )
    cached_token = per_call_us(
        lambda i: authenticate({"authorization": f"Bearer {tokens[0]}"}, settings, store), 20000
    )
    api_key = create_key(store, tenants=["city"], roles=["r"])[0]
    authenticate({"x-api-key": api_key}, settings, store)
    cached_key = per_call_us(lambda i: authenticate({"x-api-key": api_key}, settings, store), 20000)
    store.close()
    return {
        "own_token_first_check_us": first,
        "own_token_cached_us": cached_token,
        "api_key_cached_us": cached_key,
    }


def audit_costs(tmp: Path) -> dict[str, dict[str, float]]:
    from cityos.hub.store.postgres import PostgresStore
    from cityos.hub.store.sqlite import SqliteStore
    from cityos.security.audit import AuditLog

    out: dict[str, dict[str, float]] = {}
    record = {"actor": "dara", "tenant": "city", "action": "write", "target": "PATCH /x"}
    for engine in ("sqlite", "postgresql"):
        if engine == "sqlite":
            store: Any = SqliteStore(tmp / "audit.db")
            store.migrate()
        else:
            store = PostgresStore.throwaway(POSTGRES_URL)
        log = AuditLog(store)
        single_us = per_call_us(lambda i, log=log: log.append(record), 2000)
        batch_us = per_call_us(lambda i, log=log: log.append_many([record] * 100), 50) / 100
        out[engine] = {
            "appends_per_s_one_by_one": round(1e6 / single_us),
            "records_per_s_batches_of_100": round(1e6 / batch_us),
        }
        if engine == "sqlite":
            store.close()
        else:
            store.drop_schema()
    return out


def detector_costs(tmp: Path) -> dict[str, float]:
    from cityos.config import Settings
    from cityos.hub.core import Hub
    from cityos.hub.store.sqlite import SqliteStore
    from cityos.security.detect import Detector

    settings = Settings()
    hub = Hub(settings, store=SqliteStore(tmp / "detect.db"))
    detector = Detector(hub)
    feed = per_call_us(
        lambda i: detector.observe_request(
            "ip:127.0.0.1", "dara", "city", "GET", "/ngsi-ld/v1/types", 200
        ),
        5000,
    )
    hub.close()
    return {"observe_request_us": feed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = {
            "command": "benchmarks/security_parts.py",
            "policy": policy_costs(),
            "authenticate": auth_costs(tmp),
            "audit": audit_costs(tmp),
            "detector": detector_costs(tmp),
        }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "security-parts.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

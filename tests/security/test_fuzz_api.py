"""Fuzzing a real hub over a socket (docs/security.md, "Fuzzing").

Both parts run against ``cityos serve`` on SQLite and on PostgreSQL (a throwaway database),
on a free port, with the rate limit off (``CITYOS_RATE_PER_S=0``), each with authentication
off and on (``CITYOS_AUTH_REQUIRED=true``, every request with an operator's API key for
every tenant, so the door, the rules inside the data and the audit log are fuzzed too):

* **Schemathesis** over the hub's own ``/openapi.json``: every operation, positive and
  negative cases, a few examples each and a wall-clock budget for the run. No response may
  be a 5xx or have a status, content type or body the document does not declare, and a
  rejected request (4xx) must leave the database as it was. A share of the generated cases
  get a seeded entity's id in the path and entity-shaped bodies (the Hypothesis strategies
  of tests/hub/api/test_hostile_input.py), so they reach past the first "no such entity".
* **A hostile corpus** on the write routes — huge and deep JSON, NaN/Infinity, bad Unicode,
  duplicate keys, hostile ``q``/``geoQ`` strings, ``@context`` URLs aimed at internal
  addresses: a 4xx, never a 5xx, nothing written, and no connection to the internal address.

The in-process version is tests/hub/api/test_hostile_input.py (Starlette's test client);
its corpus is reused here, through uvicorn's parser and limits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cityos.hub.subscriptions import STATUS_FIELDS

BASE = "/ngsi-ld/v1"
HERE = Path(__file__).resolve().parent

# The in-process hostile-input tests: their corpus and Hypothesis strategies, loaded by path
# (tests/ is not a package) under a name of their own, so pytest does not collect them twice.
_spec = importlib.util.spec_from_file_location(
    "cityos_hostile_corpus", HERE.parent / "hub" / "api" / "test_hostile_input.py"
)
assert _spec is not None and _spec.loader is not None
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

# Schemathesis: examples per operation and mode, and the wall-clock budget of one engine's
# run (cases left once it is spent are generated, not sent): ~1,200 requests, ~30 s here.
# The same cases every run, so that a failure in CI is one here too; for a longer hunt:
# CITYOS_FUZZ_EXAMPLES=200 CITYOS_FUZZ_BUDGET_S=900 CITYOS_FUZZ_RANDOM=1 pytest -k schemathesis
MAX_EXAMPLES = int(os.environ.get("CITYOS_FUZZ_EXAMPLES", "15"))
FUZZ_BUDGET_S = float(os.environ.get("CITYOS_FUZZ_BUDGET_S", "40"))
DERANDOMIZE = os.environ.get("CITYOS_FUZZ_RANDOM") != "1"

SEED_ID = "urn:ngsi-ld:FuzzSeed:1"
SEED = {
    "id": SEED_ID,
    "type": "FuzzSeed",
    "v": {"type": "Property", "value": 1, "observedAt": "2026-11-30T01:00:00Z"},
    "name": {"type": "Property", "value": "Wat Phnom"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [104.92, 11.57]}},
}
# the entity the routes of test_hostile_input.py name
CORPUS_SEED = {"id": "urn:ngsi-ld:T:seed", "type": "T", "v": {"type": "Property", "value": 1}}
SEED_SUBSCRIPTION = {
    "id": "urn:ngsi-ld:Subscription:fuzz-seed",
    "type": "Subscription",
    "entities": [{"type": "FuzzSeed"}],
    "isActive": False,  # nothing is delivered: the fuzzing is about the API, not a webhook
    "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
}
# Values for path parameters that name something that exists (else everything is a 404).
KNOWN_PATH_VALUES = {
    "entity_id": SEED_ID,
    "attr": "v",
    "subscription_id": SEED_SUBSCRIPTION["id"],
    "type": "FuzzSeed",
    "device_id": "fuzz-device",
}
# Loopback spellings the hub may be told to fetch @context documents from: the allowlist lets
# them through, so only the address rule (cityos.hub.netguard) stands in the way.
LOOPBACK_ALLOWED = ["127.0.0.1", "localhost", "::ffff:127.0.0.1", "2130706433", "0x7f.1"]
# Tables a request can write to (outbox, delivery claims and the audit log are bookkeeping).
DATA_TABLES = ("tenants", "entities", "history", "contexts", "subscriptions", "registry")
# delivery status kept as rows of its own (csource subscriptions'): written by sends, not
# by requests, so left out of the fingerprint as entity subscriptions' status fields are
_ROWS_WHERE = {"registry": " WHERE kind <> 'csource-subscription-status'"}
GEO_TABLES = {"sqlite": ("entity_types", "geo"), "postgresql": ("entity_geo",)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running ``cityos serve`` and a view of its database."""

    engine: str
    base: str
    database_url: str
    trap: socket.socket  # listens on 127.0.0.1: an @context aimed at it must never connect
    log: Any
    headers: dict[str, str] = field(default_factory=dict)  # the credential, with auth on
    _conn: Any = None
    stats: dict[str, Any] = field(default_factory=dict)
    _http: httpx.Client | None = None
    _session: Any = None

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client (a new ``httpx`` client per request costs ~25 ms)."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.base, timeout=30, headers=self.headers)
        return self._http

    @property
    def session(self) -> Any:
        """A keep-alive ``requests`` session for Schemathesis's calls."""
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers.update(self.headers)
        return self._session

    @property
    def trap_port(self) -> int:
        return self.trap.getsockname()[1]

    def _rows(self, table: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            if self.engine == "sqlite":
                path = self.database_url.split("sqlite:///", 1)[1]
                self._conn = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10
                )
            else:
                import psycopg

                self._conn = psycopg.connect(self.database_url, autocommit=True)
        sql = f"SELECT * FROM {table}{_ROWS_WHERE.get(table, '')}"
        return [tuple(r) for r in self._conn.execute(sql).fetchall()]

    def fingerprint(self) -> str:
        """A hash of everything a request could have written (delivery status left out)."""
        tables = (*DATA_TABLES, *GEO_TABLES[self.engine])
        if self.engine == "postgresql":  # one round trip
            self._rows("tenants")  # connects
            status = ", ".join(f"'{k}'" for k in (*STATUS_FIELDS, "lastFailureReason"))
            parts = [
                f"(SELECT string_agg(t::text, '|' ORDER BY t::text) FROM {t} t"
                f"{_ROWS_WHERE.get(t, '')})"
                for t in tables
                if t != "subscriptions"
            ]
            parts.append(
                "(SELECT string_agg(concat_ws(',', tenant, id, (doc - ARRAY["
                + status
                + "])::text), '|' ORDER BY tenant, id) FROM subscriptions)"
            )
            return self._conn.execute(f"SELECT md5(concat_ws('#', {', '.join(parts)}))").fetchone()[
                0
            ]
        h = hashlib.sha256()
        for table in tables:
            rows = self._rows(table)
            if table == "subscriptions":
                rows = [tuple(_without_status(v) for v in r) for r in rows]
            h.update(table.encode())
            for r in sorted(repr(r) for r in rows):
                h.update(r.encode())
        return h.hexdigest()

    def count(self, entity_type: str) -> int:
        r = self.http.get(
            f"{BASE}/entities", params={"type": entity_type, "count": "true", "limit": "0"}
        )
        assert r.status_code == 200, r.text
        return int(r.headers["NGSILD-Results-Count"])

    def connections_to_trap(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.trap.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def log_tail(self, chars: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._http is not None:
            self._http.close()
        if self._session is not None:
            self._session.close()


def _without_status(value: Any) -> Any:
    """A subscription's document minus what delivery updates in the background."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            return value
        if isinstance(doc, dict):
            for key in (*STATUS_FIELDS, "lastFailureReason"):
                doc.pop(key, None)
            return json.dumps(doc, sort_keys=True)
    if isinstance(value, dict):
        return json.dumps(
            {k: v for k, v in value.items() if k not in (*STATUS_FIELDS, "lastFailureReason")},
            sort_keys=True,
        )
    return value


ENGINES = ["sqlite", "postgresql"]
SERVERS = [(engine, auth) for auth in (False, True) for engine in ENGINES]


@pytest.fixture(
    scope="module", params=SERVERS, ids=[f"{e}-auth-{'on' if a else 'off'}" for e, a in SERVERS]
)
def served(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Served]:
    """``cityos serve`` on a fresh database: a temp SQLite file or a throwaway PG database;
    with authentication on, every request carries an operator's key for every tenant."""
    drop: Callable[[], None] | None = None
    # a module's own parametrization may name the engine alone: authentication off
    engine, auth = request.param if isinstance(request.param, tuple) else (request.param, False)
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz-api')}/hub.db"
    else:
        import psycopg

        admin = request.getfixturevalue("postgres_url")
        name = f"cityos_fuzz_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        url = admin.rsplit("/", 1)[0] + "/" + name

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(16)
    trap.setblocking(False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    env.update(
        CITYOS_DATABASE_URL=url,
        CITYOS_RATE_PER_S="0",  # the fuzzing floods on purpose
        CITYOS_CONTEXT_ALLOW_HOSTS=",".join(LOOPBACK_ALLOWED),
        CITYOS_MQTT_URL="",
    )
    cwd = tmp_path_factory.mktemp("fuzz-cwd")  # key files it may make (data/...) go there
    headers: dict[str, str] = {}
    if auth:
        env["CITYOS_AUTH_REQUIRED"] = "true"
        # attack detection would answer the flood with Alert entities, written in the
        # background: the "a refusal writes nothing" check could not tell them apart
        env["CITYOS_DETECT"] = "false"
        made = subprocess.run(
            [sys.executable, "-m", "cityos.cli", "keys", "create", "--tenant", "*"]
            + ["--role", "city-operator", "--json"],
            cwd=cwd, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        headers["Authorization"] = f"ApiKey {json.loads(made.stdout)['key']}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    hub = Served(engine, f"http://127.0.0.1:{port}", url, trap, log, headers=headers)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{hub.base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, hub.log_tail()
            assert time.monotonic() < deadline, "cityos serve did not answer in 60 s"
            time.sleep(0.2)
        seed(hub)
        yield hub
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        hub.close()
        trap.close()
        log.close()
        if drop is not None:
            drop()


def seed(hub: Served) -> None:
    """Something for the fuzzed ids to find; put back when a case deleted it."""
    r = hub.http.post(f"{BASE}/entityOperations/upsert", json=[SEED, CORPUS_SEED])
    assert r.status_code in (201, 204), r.text
    if hub.http.get(f"{BASE}/subscriptions/{SEED_SUBSCRIPTION['id']}").status_code == 404:
        r = hub.http.post(f"{BASE}/subscriptions", json=SEED_SUBSCRIPTION)
        assert r.status_code == 201, r.text


# ------------------------------------------------------------------------------ Schemathesis


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    """The OpenAPI document the server serves, as Schemathesis loads it."""
    schema = schemathesis.openapi.from_url(f"{served.base}/openapi.json", timeout=30)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        known = {k: KNOWN_PATH_VALUES.get(k, v) for k, v in path_parameters.items()}
        return st.sampled_from([path_parameters, known])

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        path = context.operation.path
        if not (path.startswith(f"{BASE}/entit") or path.startswith(f"{BASE}/temporal")):
            return st.just(body)
        entity = corpus.entity_like.map(
            lambda e: {**e, "id": SEED_ID} if e.get("id") == "urn:ngsi-ld:T:seed" else e
        )
        batch = st.lists(entity, max_size=3)
        return st.one_of(st.just(body), entity, batch, corpus.json_values)

    return schema


def _fuzz_operation(served: Served, operation: Any, mode: Any, deadline: float) -> list[str]:
    """Up to MAX_EXAMPLES cases of one operation in one mode; the failures, shrunk."""
    failures: list[str] = []
    stats = served.stats

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            stats["over_budget"] = stats.get("over_budget", 0) + 1
            return
        before = served.fingerprint()
        response = case.call(base_url=served.base, session=served.session, timeout=30)
        stats["sent"] = stats.get("sent", 0) + 1
        stats.setdefault("statuses", {}).setdefault(response.status_code, 0)
        stats["statuses"][response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert served.fingerprint() == before, (
                f"{case.method} {case.formatted_path} answered {response.status_code} "
                f"but wrote to the database; body {case.body!r}"
            )
        elif case.method == "DELETE" or case.path.endswith("/entityOperations/delete"):
            seed(served)

    try:
        run()
    except Unsatisfiable:  # nothing to negate (only free-form strings): no negative cases
        stats.setdefault("no_negative_cases", []).append(operation.label)
    except (Exception, BaseExceptionGroup) as exc:  # every operation fuzzed, all failures told
        failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    return failures


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.mark.timeout(FUZZ_BUDGET_S + 240)
def test_schemathesis_no_5xx_schema_conformance_and_rejections_write_nothing(
    served: Served, api_schema: Any
) -> None:
    deadline = time.monotonic() + FUZZ_BUDGET_S
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) >= 45, [op.label for op in operations]  # the whole document
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz_operation(served, operation, mode, deadline)
    stats = served.stats
    print(f"schemathesis on {served.engine}: {stats}")
    assert not failures, "\n\n".join(failures)
    assert stats.get("sent", 0) >= len(operations) * 5, stats  # the budget let it reach them all


# ------------------------------------------------------------------------------ hostile corpus

# Write routes: those of test_hostile_input.py, and the other routes that take a body.
WRITE_ROUTES = [
    *corpus.ROUTES,
    ("POST", "/temporal/entities"),
    ("POST", "/temporal/entities/urn:ngsi-ld:T:seed/attrs"),
    ("POST", "/subscriptions"),
    ("PATCH", f"/subscriptions/{SEED_SUBSCRIPTION['id']}"),
    ("POST", "/jsonldContexts"),
    ("POST", "/csourceRegistrations"),
    ("POST", "/csourceSubscriptions"),
]
_MIB = 1024 * 1024
_DEEP_VALUE = "[" * 40 + "1" + "]" * 40
# Bodies no write route may take, whatever it expects: test_hostile_input.py's, minus those
# naming an @context (below), plus more of each kind.
HOSTILE_BODIES: list[bytes] = [
    *(b for b in corpus.HOSTILE_RAW if b"@context" not in b),
    # duplicate keys, at the top and inside an attribute
    b'{"id": "urn:ngsi-ld:T:dup", "id": "urn:ngsi-ld:T:dup2", "type": "T"}',
    b'{"id": "urn:ngsi-ld:T:dup", "type": "T", "v": {"type": "Property", "value": 1, "value": 2}}',
    # NaN, Infinity, numbers that overflow
    b'{"id": "urn:ngsi-ld:T:nan", "type": "T", "v": {"type": "Property", "value": NaN}}',
    b'{"id": "urn:ngsi-ld:T:inf", "type": "T", "v": {"type": "Property", "value": Infinity}}',
    b'{"id": "urn:ngsi-ld:T:big", "type": "T", "v": {"type": "Property", "value": -1E400}}',
    b'[{"id": "urn:ngsi-ld:T:big", "type": "T", "v": {"type": "Property", "value": 18446744073709551616}}]',
    # bad Unicode: bytes that are not UTF-8, an overlong '/', a lone surrogate in a key, BOMs
    b'{"id": "urn:ngsi-ld:T:u", "type": "T", "v": {"type": "Property", "value": "\xff\xfe"}}',
    b'{"id": "urn:ngsi-ld:T:u\xc0\xaf", "type": "T"}',
    b'{"id": "urn:ngsi-ld:T:u", "type": "T", "\\udfff": {"type": "Property", "value": 1}}',
    b'\xef\xbb\xbf{"id": "urn:ngsi-ld:T:bom", "type": "T"}',
    '{"id": "urn:ngsi-ld:T:u16", "type": "T"}'.encode("utf-16"),
    # structure: trailing data, too deep inside a value, more attributes than allowed
    b'{"id": "urn:ngsi-ld:T:two", "type": "T"}{"id": "urn:ngsi-ld:T:three", "type": "T"}',
    b'{"id": "urn:ngsi-ld:T:deep", "type": "T", "v": {"type": "Property", "value": '
    + _DEEP_VALUE.encode()
    + b"}}",
    # over the body limit (1 MiB): 413 before anything is parsed
    b'{"id": "urn:ngsi-ld:T:huge", "type": "T", "v": {"type": "Property", "value": "'
    + b"x" * (2 * _MIB)
    + b'"}}',
    b"[" + b",".join([b'{"id": "urn:ngsi-ld:T:many", "type": "T"}'] * 60_000) + b"]",
]


def _context_urls(trap_port: int) -> list[str]:
    """@context URLs aimed at the hub's own machine, the cloud metadata service, a private
    network. The loopback ones are on the hub's allowlist (so only the address rule refuses
    them) and point at a listener that counts connections; the others are not, and nothing
    may connect to them (no traffic leaves this machine)."""
    on_trap = [
        f"http://{h}:{trap_port}/ctx.jsonld"
        for h in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1")
    ]
    return [
        *on_trap,
        f"http://[::1]:{trap_port}/ctx.jsonld",
        f"http://0.0.0.0:{trap_port}/ctx.jsonld",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/ctx.jsonld",
        "http://100.100.100.200/latest/meta-data/",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{trap_port}/_GET%20/",
    ]


def _send(served: Served, method: str, path: str, **kw: Any) -> httpx.Response:
    return served.http.request(method, path if path.startswith("/iot") else BASE + path, **kw)


def _refusal_problem(
    served: Served, r: httpx.Response, what: str, before: str, allowed: tuple[int, ...] = ()
) -> str | None:
    """Why ``r`` is not a clean refusal (a 4xx problem document, nothing written), or None.

    A batch operation refuses every entity with 207 and an empty ``success`` (NGSI-LD's batch
    result); that counts as a refusal too.
    """
    status = r.status_code
    if status >= 500 and status not in allowed:
        return f"{what}: {status} {r.text[:300]}\n{served.log_tail(1500)}"
    # 207 and nothing done: a batch that refused every entity, an update of no attribute
    batch_refused = status == 207 and not (r.json().get("success") or r.json().get("updated"))
    if not (400 <= status < 500 or status in allowed or batch_refused):
        return f"{what}: accepted with {status} {r.text[:200]}"
    if not batch_refused and not r.headers["content-type"].startswith("application/problem+json"):
        return f"{what}: {status} with content type {r.headers['content-type']}"
    if served.fingerprint() != before:
        return f"{what}: refused with {status} but wrote to the database"
    return None


def _check_refused(
    served: Served,
    problems: list[str],
    r: httpx.Response,
    what: str,
    before: str,
    allowed: tuple[int, ...] = (),
) -> str:
    """Record a problem with ``r``; the database state to compare the next request with."""
    problem = _refusal_problem(served, r, what, before, allowed)
    if problem is None:
        return before
    problems.append(problem)
    seed(served)  # a hostile body that got in may have changed the seeds
    return served.fingerprint()


@pytest.mark.timeout(240)
def test_hostile_bodies_on_every_write_route_are_refused_and_write_nothing(
    served: Served,
) -> None:
    seed(served)
    counts = {t: served.count(t) for t in ("T", "FuzzSeed")}
    before = served.fingerprint()
    problems: list[str] = []
    for method, path in WRITE_ROUTES:
        for i, raw in enumerate(HOSTILE_BODIES):
            for ctype in ("application/json", "application/ld+json"):
                r = _send(served, method, path, content=raw, headers={"Content-Type": ctype})
                what = f"{method} {path} hostile body #{i} {raw[:60]!r} as {ctype}"
                before = _check_refused(served, problems, r, what, before)
        # the too-large body again without a Content-Length (chunked): 413 all the same
        chunks = iter([b'{"id": "urn:ngsi-ld:T:chunked", "type": "T", "v": "'] + [b"x" * _MIB] * 3)
        r = _send(
            served, method, path, content=chunks, headers={"Content-Type": "application/json"}
        )
        if r.status_code != 413:
            problems.append(f"{method} {path} chunked 3 MiB: {r.status_code} {r.text[:200]}")
        before = _check_refused(served, problems, r, f"{method} {path} chunked 3 MiB", before)
    # a body in another media type or charset
    ok_body = b'{"id": "urn:ngsi-ld:T:ctype", "type": "T"}'
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        r = _send(served, "POST", "/entities", content=ok_body, headers={"Content-Type": ctype})
        before = _check_refused(served, problems, r, f"POST /entities as {ctype}", before)
    assert not problems, "\n".join(problems)
    assert {t: served.count(t) for t in counts} == counts


@pytest.mark.timeout(120)
def test_context_urls_at_internal_addresses_are_refused_without_a_fetch(served: Served) -> None:
    seed(served)
    before = served.fingerprint()
    served.connections_to_trap()  # start from none
    problems: list[str] = []
    ld = {"Content-Type": "application/ld+json"}
    for url in _context_urls(served.trap_port):
        entity = {"id": "urn:ngsi-ld:T:ctx", "type": "T", "@context": url}
        link = f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        linked = {"Content-Type": "application/json", "Link": link}
        sub = {**SEED_SUBSCRIPTION, "id": "urn:ngsi-ld:Subscription:ctx", "@context": url}
        attempts: list[tuple[str, str, Any, dict[str, str]]] = [
            ("POST", "/entities", entity, ld),
            ("POST", "/entities", {"id": "urn:ngsi-ld:T:ctx", "type": "T"}, linked),
            ("POST", "/entityOperations/upsert", [entity], ld),
            (
                "PATCH",
                "/entities/urn:ngsi-ld:T:seed/attrs",
                {"v": {"value": 2}, "@context": url},
                ld,
            ),
            ("POST", "/subscriptions", sub, ld),
            ("POST", "/temporal/entities", entity, ld),
        ]
        for method, path, body, headers in attempts:
            what = f"{method} {path} with @context {url}"
            t = time.monotonic()
            r = _send(served, method, path, content=json.dumps(body).encode(), headers=headers)
            if time.monotonic() - t > 5:
                problems.append(f"{what}: took {time.monotonic() - t:.1f} s")
            before = _check_refused(served, problems, r, what, before, allowed=(503,))
            if r.status_code == 503 and not r.json()["type"].endswith("LdContextNotAvailable"):
                problems.append(f"{what}: 503 but not LdContextNotAvailable: {r.text[:200]}")
        # a read resolves a Link too: refused the same way, nothing fetched
        r = _send(served, "GET", "/entities", params={"type": "T"}, headers={"Link": link})
        if r.status_code not in (400, 503):
            problems.append(f"GET /entities with Link {url}: {r.status_code} {r.text[:200]}")
    assert not problems, "\n".join(problems)
    assert served.connections_to_trap() == 0, "the hub connected to an internal address"
    assert served.fingerprint() == before


HOSTILE_Q = [
    "a" * 5000,  # over the length limit
    "(" * 200 + "v==1" + ")" * 200,  # deeper than the nesting limit
    ";".join(["v==1"] * 400),  # more terms than allowed
    "|".join(f"(v=={i};" * 13 + "v==0" + ")" * 13 for i in range(3)),
    'v=="unterminated',
    "v~=(",
    "v~=(?P<x",
    "v==1;",
    "==1",
    "v[",
    "v..x==1",
    "v==\x00",
    "v==1' OR '1'='1",
    'v=="x"); DROP TABLE entities; --',
    "v>=2026-13-45T99:99:99Z",
    "v==\u202e1",
    "v==1e308",
    "v>=-9223372036854775808",
]
HOSTILE_GEO = [
    {"georel": "near;maxDistance==1e400", "geometry": "Point", "coordinates": "[104.92,11.57]"},
    {"georel": "near;maxDistance==-1", "geometry": "Point", "coordinates": "[104.92,11.57]"},
    {"georel": "near;maxDistance==NaN", "geometry": "Point", "coordinates": "[104.92,11.57]"},
    {"georel": "near;drop==1", "geometry": "Point", "coordinates": "[104.92,11.57]"},
    {"georel": "within", "geometry": "Point", "coordinates": "[" * 30 + "]" * 30},
    {"georel": "within", "geometry": "Point", "coordinates": "[1e999,0]"},
    {"georel": "within", "geometry": "Point", "coordinates": "[NaN,0]"},
    {"georel": "within", "geometry": "Point", "coordinates": "[500,0]"},
    {"georel": "within", "geometry": "Point", "coordinates": "[0]"},
    {"georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]"},
    {"georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,1],[1,0]]]"},
    {
        "georel": "intersects",
        "geometry": "Polygon",
        "coordinates": "[[" + ",".join(["[0.5,0.5]"] * 20_000) + "]]",
    },
    {"georel": "within", "geometry": "GeometryCollection", "coordinates": "[]"},
    {"georel": "within", "geometry": "Polygon", "coordinates": "x" * 300_000},
]


READ_OK = (200, 400, 403)  # 403: TooComplexQuery (NGSI-LD)


@pytest.mark.timeout(180)
def test_hostile_q_and_geo_queries_never_5xx_and_subscriptions_with_them_are_refused(
    served: Served,
) -> None:
    seed(served)
    before = served.fingerprint()
    problems: list[str] = []

    def read(what: str, r: httpx.Response, ok: tuple[int, ...] = READ_OK) -> None:
        if r.status_code not in ok:
            problems.append(f"{what}: {r.status_code} {r.text[:300]}")

    def subscribe(what: str, sub: dict[str, Any]) -> None:
        nonlocal before
        r = _send(served, "POST", "/subscriptions", json=sub)
        if r.status_code == 201:  # valid NGSI-LD after all (an injection attempt, quoted)
            _send(served, "DELETE", f"/subscriptions/{sub['id']}")
            before = served.fingerprint()
        else:
            before = _check_refused(served, problems, r, what, before)

    query = {"type": "Query", "entities": [{"type": "T"}]}
    for q in HOSTILE_Q:
        for path in ("/entities", "/temporal/entities"):
            read(
                f"GET {path} q={q[:60]!r}", _send(served, "GET", path, params={"type": "T", "q": q})
            )
        r = _send(served, "POST", "/entityOperations/query", json={**query, "q": q})
        read(f"POST /entityOperations/query q={q[:60]!r}", r)
        subscribe(
            f"subscription q={q[:60]!r}",
            {**SEED_SUBSCRIPTION, "id": f"{SEED_SUBSCRIPTION['id']}-q", "q": q},
        )
    for geo in HOSTILE_GEO:
        what = f"georel={geo['georel']} {geo['geometry']} {geo['coordinates'][:40]}"
        if len(geo["coordinates"]) < 60_000:  # longer ones go in a body (httpx's URL limit)
            r = _send(served, "GET", "/entities", params={"type": "T", **geo})
            read(f"GET /entities {what}", r)
        r = _send(served, "POST", "/entityOperations/query", json={**query, "geoQ": geo})
        read(f"POST /entityOperations/query {what}", r)
        subscribe(
            f"subscription {what}",
            {**SEED_SUBSCRIPTION, "id": f"{SEED_SUBSCRIPTION['id']}-g", "geoQ": geo},
        )
    assert not problems, "\n".join(problems)
    assert served.fingerprint() == before  # queries write nothing


# ------------------------------------------------------------------------------ known hub bugs

# What the fuzzing found and the hub does not handle yet: each case says what the hub must do,
# and is an expected failure (strict: once fixed it passes, and the mark must go) on the
# engines listed. Run `pytest -k known_hub_bugs --runxfail` to see them fail.
_DEEP_COORDINATES = "[" * 1000 + "]" * 1000


class Bug(NamedTuple):
    id: str
    engines: tuple[str, ...]  # where it fails today
    method: str
    path: str
    today: str  # what the hub does
    params: dict[str, str] | None = None
    body: Any = None
    refuse: bool = True  # a write that must be refused (else: accepted or refused, no 5xx)


KNOWN_BUGS = [
    Bug(
        "q-integer-beyond-int64",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities",
        "500: OverflowError, Python int too large to convert to SQLite INTEGER",
        params={"type": "T", "q": "v==9223372036854775808"},
    ),
    Bug(
        "q-integer-beyond-int64-in-query-body",
        (),  # fixed: now a regression test on both engines
        "POST",
        "/entityOperations/query",
        "500: OverflowError (SQLite)",
        body={"type": "Query", "entities": [{"type": "T"}], "q": "v>99999999999999999999"},
    ),
    Bug(
        "q-number-overflowing-to-infinity",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities",
        "500: invalid input syntax for type json, Token 'Infinity' (PostgreSQL)",
        params={"type": "T", "q": "v==1e400"},
    ),
    Bug(
        "offset-beyond-int64",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities",
        "500: OverflowError (SQLite), bigint out of range (PostgreSQL)",
        params={"type": "T", "offset": "99999999999999999999"},
    ),
    Bug(
        "nul-in-attrs",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities",
        "500: JSON path error (SQLite), text fields cannot contain NUL (PostgreSQL)",
        params={"type": "T", "attrs": "\x00"},
    ),
    Bug(
        "nul-in-type",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities",
        "500: text fields cannot contain NUL (also id, idPattern, scopeQ)",
        params={"type": "\x00"},
    ),
    Bug(
        "nul-in-entity-id-path",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities/urn:a:%00",
        "500: text fields cannot contain NUL (also /types/{type}, /jsonldContexts/{id}, temporal)",
    ),
    Bug(
        "nul-in-a-stored-json-string",
        (),  # fixed: now a regression test on both engines
        "POST",
        "/entities",
        "500: jsonb cannot hold \\u0000 (also subscriptions, jsonldContexts, /iot/services)",
        body={"id": "urn:ngsi-ld:T:nul", "type": "T", "v": {"type": "Property", "value": "a\x00"}},
        refuse=False,
    ),
    Bug(
        "nul-in-a-subscription-patch",
        (),  # fixed: now a regression test on both engines
        "PATCH",
        f"/subscriptions/{SEED_SUBSCRIPTION['id']}",
        "500: jsonb cannot hold \\u0000",
        body={"description": "a\x00"},
        refuse=False,
    ),
    Bug(
        "coordinates-nested-1000-deep",
        (),  # fixed: now a regression test on both engines
        "GET",
        "/entities",
        "500: RecursionError in json.loads (query/geo.py parse_geo_query)",
        params={
            "type": "T",
            "georel": "within",
            "geometry": "Point",
            "coordinates": _DEEP_COORDINATES,
        },
    ),
    Bug(
        "subscription-geoQ-nested-1000-deep",
        (),  # fixed: now a regression test on both engines
        "POST",
        "/subscriptions",
        "500: RecursionError in json.loads",
        body={
            **SEED_SUBSCRIPTION,
            "id": "urn:ngsi-ld:Subscription:deep",
            "geoQ": {"georel": "within", "geometry": "Point", "coordinates": _DEEP_COORDINATES},
        },
    ),
    Bug(
        "attribute-type-not-a-string",
        (),  # fixed: now a regression test on both engines
        "POST",
        "/entities",
        "500: TypeError unhashable type 'list' (representation/parse.py instance)",
        body={"id": "urn:ngsi-ld:T:lt", "type": "T", "v": {"type": ["Property"]}},
    ),
    Bug(
        "append-over-the-attribute-limit",
        (),  # fixed: now a regression test on both engines
        "POST",
        "/entities/urn:ngsi-ld:T:seed/attrs",
        "204: 1,100 attributes appended, over max_attributes (1,024 per entity)",
        body={f"a{i}": {"type": "Property", "value": i} for i in range(1100)},
    ),
]


def _bug_cases() -> list[Any]:
    """One case per bug and engine: a strict expected failure where it fails today."""
    return [
        pytest.param(
            engine,
            bug,
            id=f"{engine}-{bug.id}",
            marks=[pytest.mark.xfail(strict=True, reason=f"hub bug: {bug.today}")]
            if engine in bug.engines
            else [],
        )
        for engine in ENGINES  # engine first: one server per engine, not one per case
        for bug in KNOWN_BUGS
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("served", "bug"), _bug_cases(), indirect=["served"], scope="module")
def test_known_hub_bugs(served: Served, bug: Bug) -> None:
    """Never a 5xx; a read answers 200/4xx; a write that must be refused is a 4xx problem
    document and writes nothing."""
    seed(served)
    before = served.fingerprint()
    r = _send(served, bug.method, bug.path, params=bug.params, json=bug.body)
    assert r.status_code < 500, f"{r.status_code} {r.text[:300]}"
    if bug.method == "GET" or bug.path == "/entityOperations/query":
        assert r.status_code in (*READ_OK, 404), f"{r.status_code} {r.text[:300]}"
        assert served.fingerprint() == before
    elif bug.refuse or r.status_code >= 400:
        problems: list[str] = []
        _check_refused(served, problems, r, f"{bug.method} {bug.path}", before)
        assert not problems, problems
    seed(served)


REDOS_VALUE = "a" * 24 + "!"  # (a+)+$ backtracks ~2^24 steps on it: ~1-3 s of Python's re
REDOS_Q = "name~=(a+)+$"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("served", ENGINES, indirect=True, scope="module")
def test_a_pathological_regex_in_q_cannot_stall_the_hub(served: Served) -> None:
    """``~=`` runs a client's regular expression: one that backtracks exponentially must not
    hold the hub. Python's ``re`` took 13 s on 27 characters, holding the GIL (every
    request waited, /health too); RE2 (query/regex.py) runs it in linear time."""
    entity = {
        "id": "urn:ngsi-ld:Redos:1",
        "type": "Redos",
        "name": {"type": "Property", "value": "x"},
    }
    assert _send(served, "POST", "/entityOperations/upsert", json=[entity]).status_code in (
        201,
        204,
    )
    # warm up the query path, with a harmless regex
    assert (
        _send(served, "GET", "/entities", params={"type": "Redos", "q": "name~=x"}).status_code
        == 200
    )
    slow: list[str] = []
    sub = {
        "id": "urn:ngsi-ld:Subscription:redos",
        "type": "Subscription",
        "entities": [{"type": "Redos"}],
        "q": REDOS_Q,
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
    }
    try:
        assert _send(served, "POST", "/subscriptions", json=sub).status_code == 201
        t = time.monotonic()
        r = _send(
            served,
            "PATCH",
            "/entities/urn:ngsi-ld:Redos:1/attrs",
            json={"name": {"type": "Property", "value": REDOS_VALUE}},
        )
        assert r.status_code == 204, r.text
        if (took := time.monotonic() - t) > 0.5:
            slow.append(f"PATCH matched against subscription q={REDOS_Q}: {took:.1f} s")
    finally:
        _send(served, "DELETE", f"/subscriptions/{sub['id']}")
    try:
        t = time.monotonic()
        r = _send(served, "GET", "/entities", params={"type": "Redos", "q": REDOS_Q})
        assert r.status_code in READ_OK, r.text
        if (took := time.monotonic() - t) > 0.5:
            slow.append(f"GET /entities q={REDOS_Q}: {took:.1f} s")
    finally:  # leave nothing a later fuzzed regex could trip on
        _send(served, "DELETE", "/entities/urn:ngsi-ld:Redos:1")
    assert not slow, slow

"""``cityos doctor``: is this installation ready to serve? CityOS's own checks (settings,
database, PostGIS, Redis, the rules, the port) and then each registered part's
(``Service.diagnostics``: the MQTT broker, the keys, SUMO, …), each one line with what to
do when it fails. Nothing is changed: the database is not migrated, no key is made."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cityos.config import Settings
from cityos.plug import Check, Service, ServiceContext


@dataclass(frozen=True)
class Finding:
    part: str  # "cityos" for the core, else the registered part's name
    check: Check

    def to_json(self) -> dict[str, Any]:
        c = self.check
        return {"part": self.part, "check": c.name, "ok": c.ok, "detail": c.detail, "hint": c.hint}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _latest_version(engine: str) -> int:
    if engine == "postgresql":
        from cityos.hub.store.postgres import MIGRATIONS
    else:
        from cityos.hub.store.sqlite import MIGRATIONS
    return len(MIGRATIONS)


def _tcp(host: str, port: int, timeout: float = 2.0) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or _first_line(exc)


def database_checks(settings: Settings) -> Iterator[Check]:
    """The database opens, is at the newest schema, and (PostgreSQL) has PostGIS."""
    from cityos.hub.store import open_store

    fix = "set --database-url or CITYOS_DATABASE_URL"
    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():  # a fresh installation: not made here (nothing is changed)
            folder = next(p for p in [path.parent, *path.parents] if p.exists())
            writable = os.access(folder, os.W_OK)
            yield Check(
                "database", writable,
                f"{path} does not exist yet"
                + (": `cityos db init` or `cityos serve` makes it" if writable
                   else f" and {folder} is not writable"),
                "" if writable else fix,
            )  # fmt: skip
            return
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level
    pool_log.setLevel(logging.CRITICAL)
    try:
        store = open_store(settings.database_url)
    except Exception as exc:
        yield Check("database", False, f"{settings.database_url}: {_first_line(exc)}", fix)
        return
    finally:
        pool_log.setLevel(level)
    try:
        version = store.schema_version()
        latest = _latest_version(store.engine)
        yield Check("database", True, f"{store.engine} at {settings.database_url}")
        if version < latest:
            yield Check(
                "schema", False, f"at version {version} of {latest}",
                "run `cityos db migrate` (cityos serve also does it on start)",
            )  # fmt: skip
        else:
            yield Check("schema", True, f"version {version}")
        if store.engine == "postgresql":
            yield from _postgis(store)
    except Exception as exc:
        yield Check("database", False, f"{settings.database_url}: {_first_line(exc)}", fix)
    finally:
        store.close()


def _postgis(store: Any) -> Iterator[Check]:
    with store._pool.connection() as conn:
        row = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'"
        ).fetchone()
    if row is None:
        yield Check(
            "PostGIS", False, "not installed on the server",
            "apt-get install postgresql-15-postgis-3 (Debian/Ubuntu; match the server's version)",
        )  # fmt: skip
    else:
        yield Check("PostGIS", True, f"available ({row[0]})")


def core_checks(settings: Settings) -> Iterator[Check]:
    """CityOS's own readiness, before any part's."""
    try:
        settings.notify_private_allowed()
    except ValueError as exc:
        yield Check(
            "settings", False, _first_line(exc), "notify_allow_private: auto, true or false"
        )
    yield from database_checks(settings)
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        why = _tcp(parts.hostname or "127.0.0.1", parts.port or 6379)
        yield Check(
            "Redis", why is None, f"{settings.redis_url}" + (f": {why}" if why else " answers"),
            "" if why is None else "start redis-server or fix redis_url",
        )  # fmt: skip
    if settings.policy_path:
        from cityos.hub.ldcontext import core_context
        from cityos.security.policy import Policy

        try:
            policy = Policy.load(settings.policy_path, core_context())
            yield Check("roles", True, f"{settings.policy_path}: {len(policy.roles)} role(s)")
        except Exception as exc:
            yield Check("roles", False, _first_line(exc), "fix the file in policy_path")
    if settings.retention:
        from cityos.hub.ldcontext import core_context
        from cityos.hub.retention import parse_rules

        try:
            parse_rules(settings.retention, core_context())
            yield Check("retention", True, f"{len(settings.retention)} rule(s)")
        except Exception as exc:
            yield Check("retention", False, _first_line(exc), "fix CITYOS_RETENTION")
    yield _port(settings.host, settings.port)


def _port(host: str, port: int) -> Check:
    name = f"port {host}:{port}"
    if not 1 <= port <= 65535:
        return Check(name, False, "not a TCP port", "set --port or CITYOS_PORT to 1-65535")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
        return Check(name, True, "free for `cityos serve`")
    except OSError as exc:
        # in use is not a failure: it may be this installation's own server
        if _tcp(host, port) is None:
            return Check(name, True, "in use (a server already listens there)")
        return Check(name, False, exc.strerror or _first_line(exc), "pick another --port/--host")


def part_checks(
    registered: tuple[Service, ...], settings: Settings, client: Any
) -> Iterator[Finding]:
    """Each part's own diagnostics, with its context (``client`` None when the database
    could not be opened); a part whose checks raise is reported, not fatal."""
    from cityos.services.settings import settings_of

    for service in registered:
        if service.diagnostics is None:
            continue
        try:
            ctx = ServiceContext(
                name=service.name,
                client=client,
                settings=settings_of(service, settings),
                core=settings,
            )
            for check in service.diagnostics(ctx):
                yield Finding(service.name, check)
        except Exception as exc:
            yield Finding(service.name, Check("checks", False, _first_line(exc)))


def run(settings: Settings, registered: tuple[Service, ...]) -> list[Finding]:
    """Every finding: CityOS's own, then each registered part's."""
    findings = [Finding("cityos", c) for c in core_checks(settings)]
    client = None
    ready = [f for f in findings if f.check.name in ("database", "schema")]
    if len(ready) == 2 and all(f.check.ok for f in ready):
        from cityos.hub.client import HubClient
        from cityos.hub.core import Hub

        try:
            client = HubClient(Hub(settings))  # the schema is current: nothing is migrated
        except Exception:
            client = None
    try:
        findings += part_checks(registered, settings, client)
    finally:
        if client is not None:
            client.hub.close()
    return findings

"""Settings: defaults, then an optional TOML file, then ``CITYOS_*`` environment variables.

The TOML file is ``cityos.toml`` in the working directory or the path in ``CITYOS_CONFIG``;
keys are the field names below (``database_url = "postgresql://…"``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Settings:
    database_url: str = "sqlite:///data/city.db"
    pg_synchronous_commit: str = "off"  # "on": wait for the disk on every commit
    host: str = "127.0.0.1"
    port: int = 1026
    max_body_bytes: int = 1_048_576  # 1 MiB; 413 above
    # a body over max_body_bytes is read and dropped up to this much more (5 s at most) before
    # the 413, so the client gets to read it; beyond, the connection is closed on it
    max_drain_bytes: int = 16 * 1_048_576
    max_json_depth: int = 32
    max_attributes: int = 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    max_batch_entities: int = 10_000
    # temporal answers: the most instances one entity's history holds in one response;
    # beyond, 206 Partial Content with Content-Range (clause 6.3.10)
    temporal_instance_limit: int = 1000
    context_allow_hosts: list[str] = field(default_factory=list)
    mqtt_url: str = ""  # e.g. mqtt://127.0.0.1:1883: devices publish to /<apikey>/<device>/attrs
    mqtt_shared_group: str = ""  # set: workers share the device stream ($share/<group>/...)
    device_max_message_bytes: int = 65_536  # a device message over this is rejected and counted
    device_rate_per_s: float = 10.0  # per-device token bucket: sustained messages/s (0: no limit)
    device_burst: int = 50  # ... and how many a device may send at once
    device_stats_flush_s: float = 5.0  # device counters are written to Device entities this often
    device_command_timeout_s: float = 60.0  # a command unanswered this long: ERROR (EXPIRED)
    notify_timeout_s: float = 5.0  # a webhook slower than this counts as failed
    notify_backoff_s: float = 1.0  # first retry after this, doubling each time
    notify_max_attempts: int = 6  # then the subscription is marked failed
    notify_poll_s: float = 0.2  # how often the delivery worker looks at the outbox
    # history retention rules ("TrafficFlowObserved.intensity=90d", "*=365d"); none: keep all
    retention: list[str] = field(default_factory=list)
    retention_interval_s: int = 0  # > 0: `cityos serve` applies the rules this often
    retention_context: str = ""  # @context URL the rules' terms are expanded with (core if empty)
    context_fetch_timeout_s: float = 5.0
    context_max_bytes: int = 1_048_576
    # -- hardening (docs/security.md, "Hardening"; cityos.hub.netguard, cityos.security.ratelimit/headers)
    # hosts in context_allow_hosts that may also resolve to loopback/private addresses
    context_allow_private_hosts: list[str] = field(default_factory=list)
    # local copies of remote @contexts for a hub without the Internet: ORIGINAL_PREFIX=
    # MIRROR_PREFIX entries; fetched from the mirror (whose host must be allowlisted), kept
    # and served under the original URL (docs/api.md, "@contexts")
    context_mirrors: list[str] = field(default_factory=list)
    # notification endpoints on loopback/private addresses: "auto" (allowed only while `host`
    # is a loopback address: the single-machine set-up), "true" or "false"
    notify_allow_private: str = "auto"
    rate_per_s: float = 200.0  # per-client token bucket: sustained requests/s (0: no limit)
    rate_burst: int = 400  # ... and how many a client may send at once
    redis_url: str = ""  # redis://host:6379/0: rate-limit buckets shared by all workers
    cors_origins: list[str] = field(default_factory=list)  # none: no CORS headers at all
    # reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs); empty: none,
    # the client is the TCP peer (uvicorn alone would trust 127.0.0.1)
    trusted_proxies: list[str] = field(default_factory=list)
    hsts_max_age_s: int = 0  # > 0 (served over TLS): Strict-Transport-Security max-age
    # -- end hardening --------------------------------------------------------------------
    # the audit log's Ed25519 signing key (PEM, made with 0600 on first use) and how often
    # `cityos serve` signs a tree head (docs/security.md)
    audit_key_path: str = "data/audit-ed25519.pem"
    audit_sign_interval_s: float = 60.0
    # the latest signed head, kept outside the database (written on each signature; what
    # `cityos audit verify` checks the log still reaches). "": one per database beside the key
    audit_anchor_path: str = ""
    # the dashboard's live stream ends after this, and the page opens a new one (so no
    # connection is held for ever, and a grant revoked since is judged again)
    dashboard_stream_s: float = 300.0
    # -- identity (docs/security.md, "Identity"; cityos.security.identity) --------------
    auth_required: bool = False  # true: a request without credentials is refused (401)
    jwt_issuer: str = ""  # an external OIDC issuer (its tokens' "iss", exactly)
    jwt_audience: str = ""  # the "aud" its tokens must carry for CityOS
    jwks_url: str = ""  # the issuer's JWKS (https, or http to a host in jwks_allow_hosts)
    jwks_path: str = ""  # ... or a JWKS file
    jwks_allow_hosts: list[str] = field(default_factory=list)  # hosts jwks_url may use http to
    jwt_tenants_claim: str = "tenants"  # claim (dotted path) with the tenants; list or spaced
    jwt_roles_claim: str = "roles"  # claim (dotted path) with the roles; else realm_access.roles
    jwt_leeway_s: float = 30.0  # clock skew allowed on exp / nbf / iat
    token_key_path: str = "data/token-key.pem"  # CityOS's own Ed25519 issuer key (made on use)
    token_ttl_s: int = 3600  # lifetime of tokens CityOS issues itself
    auth_recheck_s: float = 5.0  # revoked keys / removed users are refused within this
    # logins (POST /auth/token): argon2 hashes at once (64 MiB each), logins that may wait
    # for one, and logins one client may have in flight; beyond: 503 / 429 before hashing
    auth_max_concurrent_hashes: int = 2
    auth_hash_queue: int = 8
    auth_max_logins_per_client: int = 2
    # -- end identity ---------------------------------------------------------------------
    # -- detection (docs/security.md, "Attack detection"; cityos.security.detect) --------
    detect: bool = True  # watch requests (when auth_required) and device measures; raise Alerts
    detect_interval_s: float = 0.5  # the background task processes the events this often
    detect_window_s: float = 60.0  # the rules count events within this
    detect_bruteforce_failures: int = 10  # failed authentications from one client: bruteForce
    detect_idscan_ids: int = 20  # 404s on distinct ids by one principal or client: idScan
    detect_denied_requests: int = 30  # 401/403 refusals of one principal or client: deniedRequests
    detect_alert_window_s: float = 900.0  # one open alert per source and kind until this quiet
    detect_ranges: list[str] = field(default_factory=list)  # more plausible ranges: name=lo..hi
    detect_warmup: int = 20  # changes a sensor attribute shows before its jumps are judged
    detect_jump_z: float = 8.0  # a change this many standard deviations out: abnormalJump
    detect_rate_window_s: float = 10.0  # request rates are counted per client in such windows
    detect_rate_warmup: int = 30  # windows a client shows before its rate is judged
    detect_rate_z: float = 6.0  # log(1 + requests) this many deviations up: abnormalRequestRate
    detect_rate_min_requests: int = 100  # ... and at least this many requests in the window
    # -- end detection --------------------------------------------------------------------
    # the roles' rules (JSON, cityos.security.policy); none: the example roles
    policy_path: str = ""
    # a caller that may aggregate a type but not read it: aggrPeriodDuration a whole multiple
    # of this, buckets on that grid, no lastN (docs/security.md, "The rules inside the data")
    min_aggregation_period_s: int = 900
    # not settings themselves: the ``[services.<name>]`` tables of the file and the
    # environment they were loaded from, read by each service's own settings
    # (cityos.services.settings) — a service's keys are checked against its declaration
    sections: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    def notify_private_allowed(self) -> bool:
        """Whether notifications may go to loopback/private addresses (notify_allow_private)."""
        mode = self.notify_allow_private.strip().lower()
        if mode == "auto":
            from cityos.hub.netguard import is_loopback_host

            return is_loopback_host(self.host)
        if mode in ("1", "true", "yes", "on"):
            return True
        if mode in ("0", "false", "no", "off"):
            return False
        raise ValueError(
            f"setting notify_allow_private: {self.notify_allow_private!r} is not auto, true or false"
        )

    @classmethod
    def load(cls, env: dict[str, str] | None = None, path: str | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        cfg = (
            path
            or env.get("CITYOS_CONFIG")
            or ("cityos.toml" if Path("cityos.toml").exists() else None)
        )
        if cfg:
            with open(cfg, "rb") as fh:
                values.update(tomllib.load(fh))
        sections = values.pop("services", {})
        if not isinstance(sections, dict) or not all(
            isinstance(v, dict) for v in sections.values()
        ):
            raise ValueError("setting services: must hold one table per service, [services.<name>]")
        known = {f.name: f for f in fields(cls) if f.name not in _NOT_SETTINGS}
        for f in known.values():
            raw = env.get("CITYOS_" + f.name.upper())
            if raw is not None:
                values[f.name] = raw
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        out = cls()
        for name, raw in values.items():
            setattr(out, name, coerce(known[name].type, raw, name))
        out.sections = sections
        out.environ = {k: v for k, v in env.items() if k.startswith("CITYOS_")}
        # the settings with a format of their own, checked now: a wrong one is one line
        # (cityos.clikit.load_settings), not a traceback when the hub starts
        out.notify_private_allowed()
        parse_mirrors(out.context_mirrors)
        return out


_NOT_SETTINGS = frozenset({"sections", "environ"})


def parse_mirrors(entries: list[str]) -> dict[str, str]:
    """``context_mirrors`` (``ORIGINAL_PREFIX=MIRROR_PREFIX`` each) as a mapping; ValueError
    naming the entry when one is not two http(s) URL prefixes."""
    out: dict[str, str] = {}
    for entry in entries:
        original, sep, mirror = entry.partition("=")
        original, mirror = original.strip(), mirror.strip()
        for url in (original, mirror):
            parts = urlsplit(url)
            if not sep or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"setting context_mirrors: {entry!r} is not ORIGINAL_PREFIX=MIRROR_PREFIX "
                    "with two http(s) URLs"
                )
        out[original] = mirror
    return out


def coerce(kind: Any, raw: Any, name: str) -> Any:
    """``raw`` (from TOML or the environment) as a setting of type ``kind`` (its annotation)."""
    kind = kind.__name__ if isinstance(kind, type) else str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind.startswith("list"):
            if isinstance(raw, list):
                return [str(x) for x in raw]
            return [x.strip() for x in str(raw).split(",") if x.strip()]
        return str(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name}: {raw!r} is not a valid {kind}") from exc

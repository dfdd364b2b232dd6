"""Who may do what: roles and their rules per tenant, on entity types, entity ids and
attributes, for the actions read, aggregate, write, delete, subscribe and administer.

Rules are data (a JSON file, ``CITYOS_POLICY_PATH``, or :data:`EXAMPLE_ROLES`); Casbin
decides. The matcher is ours on purpose, and small: Casbin's path matchers (``keyMatch2``
and friends) read ``:name`` as a path parameter, so a rule for
``urn:ngsi-ld:TrafficSignal:*`` would match every URN. Here a type or an attribute matches
only itself (expanded to its IRI with the rules' ``@context``) or ``*``; an id pattern is
an exact id, ``*``, a literal prefix ending in ``*``, or contains ``{subject}`` (the
principal's own id: a resident's own data).

Rules file::

    {"@context": "https://…/context.jsonld",            # optional; the core context else
     "roles": {"traffic-engineer": [
        {"tenants": ["*"], "types": ["TrafficFlowObserved"], "ids": ["*"],
         "attrs": ["*"], "actions": ["read", "write", "subscribe"]}]}}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import casbin

from cityos.hub.ldcontext import Context

ACTIONS = ("read", "aggregate", "write", "delete", "subscribe", "administer")
ANY = "\x00any"  # a request about "some" attribute or id: matches every rule's pattern

_MODEL = """
[request_definition]
r = role, tenant, etype, eid, attr, act, subject

[policy_definition]
p = role, tenant, etype, eid, attr, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.role == p.role && (p.tenant == "*" || r.tenant == p.tenant) \
&& term_match(r.etype, p.etype) && id_match(r.eid, p.eid, r.subject) \
&& term_match(r.attr, p.attr) && r.act == p.act
"""


def term_match(value: str, pattern: str) -> bool:
    """A type or attribute IRI against a rule's: itself, or ``*``. Nothing else."""
    return pattern == "*" or value in (ANY, pattern)


def id_match(value: str, pattern: str, subject: str) -> bool:
    """An entity id against a rule's pattern: ``*``, an exact id, a literal prefix
    ending in ``*``, with ``{subject}`` standing for the principal's own id."""
    if pattern == "*" or value == ANY:
        return True
    if "{subject}" in pattern:
        if not subject:
            return False
        pattern = pattern.replace("{subject}", subject)
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


class PolicyError(ValueError):
    """A rules file that cannot be used, with the reason."""


@dataclass(frozen=True)
class View:
    """What a set of roles may see of a tenant for one action, for filtering queries in
    the database (so counts and pages stay right) and attributes when rendering. Rules
    limited to some ids (a resident's own record) grant single-entity requests only."""

    all_types: bool
    types: frozenset[str]  # expanded type IRIs (when not all_types)
    attrs: dict[str, frozenset[str] | None] = field(default_factory=dict)  # type -> attrs

    @property
    def everything(self) -> bool:
        """Every type, id and attribute (a city operator): callers skip per-entity checks."""
        return self.all_types and "*" in self.attrs and self.attrs["*"] is None

    @property
    def nothing(self) -> bool:
        return not self.all_types and not self.types

    def attrs_for(self, types: Iterable[str]) -> frozenset[str] | None:
        """The attributes of an entity with these types that may be seen (None: all)."""
        allowed: set[str] = set()
        for t in ["*", *types]:
            if t in self.attrs:
                if self.attrs[t] is None:
                    return None
                allowed |= self.attrs[t] or set()
        return frozenset(allowed)


class Policy:
    """The rules, compiled into a Casbin enforcer; decisions are cached."""

    def __init__(self, doc: dict[str, Any], ctx: Context) -> None:
        self.doc = doc
        self.rows = list(_rows(doc, ctx))
        model = casbin.model.Model()
        model.load_model_from_text(_MODEL)
        self._enforcer = casbin.Enforcer(model)
        self._enforcer.add_function("term_match", term_match)
        self._enforcer.add_function("id_match", id_match)
        if self.rows:
            self._enforcer.add_policies([list(r) for r in self.rows])
        self.roles = frozenset(doc.get("roles", {}))
        # Casbin evaluates every rule per decision (~0.25 ms here): decisions are cached,
        # and the id is left out of the key for roles whose rules never name ids
        self._by_id = frozenset(r[0] for r in self.rows if r[3] != "*")
        self._decide = lru_cache(maxsize=65536)(self._decide_uncached)
        self._view = lru_cache(maxsize=4096)(self._view_uncached)
        self._routes: dict[tuple[frozenset[str], str, str], bool] = {}

    @classmethod
    def load(cls, path: str | Path, ctx: Context) -> Policy:
        return cls(read_rules(path), ctx)

    def allowed(
        self,
        roles: Iterable[str],
        tenant: str,
        action: str,
        *,
        etype: str = ANY,
        eid: str = ANY,
        attr: str = ANY,
        subject: str = "",
    ) -> bool:
        """Whether any of ``roles`` may do ``action`` on that (ANY: on some of them)."""
        if action not in ACTIONS:
            raise PolicyError(f"unknown action {action!r}")
        return any(
            self._decide(role, tenant, etype, eid, attr, action, subject)
            if role in self._by_id
            else self._decide(role, tenant, etype, ANY, attr, action, "")
            for role in roles
        )

    def may_act(self, roles: frozenset[str], tenant: str, action: str) -> bool:
        """Whether some rule of ``roles`` grants ``action`` in ``tenant`` at all (the door's
        question, asked on every request): one dict lookup once answered."""
        key = (roles, tenant, action)
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= 65536:
                self._routes.clear()
            found = self._routes[key] = self.allowed(roles, tenant, action)
        return found

    def _decide_uncached(
        self, role: str, tenant: str, etype: str, eid: str, attr: str, act: str, subject: str
    ) -> bool:
        return bool(self._enforcer.enforce(role, tenant, etype, eid, attr, act, subject))

    def view(self, roles: Iterable[str], tenant: str, action: str) -> View:
        return self._view(frozenset(roles), tenant, action)

    def _view_uncached(self, roles: frozenset[str], tenant: str, action: str) -> View:
        all_types = False
        types: set[str] = set()
        attrs: dict[str, set[str] | None] = {}
        for role, ten, etype, eid, attr, act in self.rows:
            if role not in roles or act != action or ten not in ("*", tenant):
                continue
            if eid != "*":  # by-id rules grant entity by entity (allowed()), not queries
                continue
            if etype == "*":
                all_types = True
            else:
                types.add(etype)
            if attr == "*":
                attrs[etype] = None
            elif attrs.get(etype, set()) is not None:
                attrs.setdefault(etype, set()).add(attr)  # type: ignore[union-attr]
        return View(
            all_types,
            frozenset(types),
            {t: (None if a is None else frozenset(a)) for t, a in attrs.items()},
        )


def _rows(doc: dict[str, Any], ctx: Context) -> Iterable[tuple[str, str, str, str, str, str]]:
    roles = doc.get("roles")
    if not isinstance(roles, dict):
        raise PolicyError('a policy needs "roles": {role: [rule, …]}')
    for role, rules in roles.items():
        if not isinstance(rules, list):
            raise PolicyError(f"role {role!r}: a list of rules")
        for n, rule in enumerate(rules):
            where = f"role {role!r}, rule {n + 1}"
            if not isinstance(rule, dict):
                raise PolicyError(f"{where}: a rule is an object")
            unknown = set(rule) - {"tenants", "types", "ids", "attrs", "actions", "comment"}
            if unknown:
                raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}")
            actions = _strings(rule, "actions", where, default=None)
            bad = [a for a in actions if a not in ACTIONS]
            if bad:
                raise PolicyError(f"{where}: unknown action(s) {bad}; use {list(ACTIONS)}")
            for pattern in _strings(rule, "ids", where):
                if "*" in pattern[:-1]:
                    raise PolicyError(f"{where}: id pattern {pattern!r}: '*' only at the end")
            types = [t if t == "*" else ctx.expand_term(t) for t in _strings(rule, "types", where)]
            attrs = [a if a == "*" else ctx.expand_term(a) for a in _strings(rule, "attrs", where)]
            for tenant in _strings(rule, "tenants", where):
                for etype in types:
                    for eid in _strings(rule, "ids", where):
                        for attr in attrs:
                            for act in actions:
                                yield (role, tenant, etype, eid, attr, act)


def _strings(rule: dict[str, Any], key: str, where: str, default: Any = "*") -> list[str]:
    value = rule.get(key, [default] if default is not None else None)
    if value is None:
        raise PolicyError(f"{where}: {key!r} is required")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key!r} must be a non-empty list of strings")
    return value


def read_rules(path: str | Path) -> dict[str, Any]:
    """A rules file's document; PolicyError (one line) when it cannot be read or is no
    JSON object."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"policy file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise PolicyError(f'policy file {path}: a JSON object with "roles" is expected')
    return doc


def part_role(name: str) -> str:
    """The role a registered part's own credentials carry (``cityos keys create --role``)."""
    return f"service:{name}"


def with_part_roles(
    doc: dict[str, Any], declared: Mapping[str, tuple[Iterable[str], Iterable[str]]]
) -> dict[str, Any]:
    """The rules plus, for each registered part that declares entity types, its default
    role: read, aggregate and subscribe what it declares it reads; read, write and
    subscribe what it writes; nothing else. A role the rules already name is theirs and is
    kept as written (a city narrows or widens a part's grant in its own file)."""
    if not isinstance(doc.get("roles"), dict):
        return doc  # not rules at all: Policy says why, in one line
    roles = dict(doc["roles"])
    for name, (reads, writes) in declared.items():
        role = part_role(name)
        if role in roles:
            continue
        rules = []
        if reads := sorted(set(reads) - set(writes)):
            rules.append({"types": reads, "actions": ["read", "aggregate", "subscribe"]})
        if writes := sorted(set(writes)):
            rules.append({"types": writes, "actions": ["read", "aggregate", "write", "subscribe"]})
        if rules:
            roles[role] = rules
    return {**doc, "roles": roles}


# The roles CityOS ships as examples (docs/security.md); a city adapts them in its file.
EXAMPLE_ROLES: dict[str, Any] = {
    "roles": {
        "city-operator": [{"actions": list(ACTIONS)}],
        "traffic-engineer": [
            {
                "types": ["TrafficFlowObserved", "TrafficSignal", "Road", "RoadSegment"],
                "actions": ["read", "aggregate", "write", "subscribe"],
            },
            {"types": ["GtfsStop", "GtfsRoute", "Vehicle"], "actions": ["read", "aggregate"]},
        ],
        "energy-utility": [
            {
                "types": ["ACMeasurement", "EnergyMeter", "Building"],
                "actions": ["read", "aggregate", "write", "subscribe"],
            }
        ],
        "transit-operator": [
            {
                "types": ["GtfsStop", "GtfsRoute", "GtfsAgency", "Vehicle"],
                "actions": ["read", "aggregate", "write", "subscribe"],
            },
            {"types": ["TrafficFlowObserved"], "actions": ["read", "subscribe"]},
        ],
        "researcher": [
            {
                "types": ["TrafficFlowObserved", "AirQualityObserved", "ACMeasurement"],
                "actions": ["aggregate"],
            }
        ],
        "resident": [
            {"types": ["AirQualityObserved", "GtfsStop"], "actions": ["read", "subscribe"]},
            {"ids": ["urn:ngsi-ld:Person:{subject}"], "actions": ["read", "write"]},
        ],
    }
}

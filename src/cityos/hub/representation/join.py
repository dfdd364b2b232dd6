"""Linked entity retrieval: ``join=inline|flat`` with ``joinLevel`` (GS CIM 009 v1.8 4.5.23).

* ``inline``: each Relationship instance shown gets an ``entity`` member holding the entity
  it points to (in keyValues the object id itself is replaced by that entity), down to
  ``joinLevel`` hops.
* ``flat``: the entities found, then every entity reached within ``joinLevel`` hops, each
  once, as further items of the same array.

Only Relationships the client sees are followed: one dropped by ``attrs``, ``pick`` or
``omit`` links nothing. A nested ``pick``/``omit`` (``locatedAt{id,name}``) selects the
members of the linked entity. Linked entities come from ``fetch`` (ids -> the entities the
caller may see, missing ones left out), one call per hop, so the API, the batch query and
notifications share this and each decides what a caller may read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cityos.hub.model import Entity
from cityos.hub.representation.projection import Projection
from cityos.hub.representation.render import TermCompactor, render_entity

JOINS = ("inline", "flat")
Fetch = Callable[[list[str]], dict[str, Entity]]
_Sel = Iterable[str] | None
# one entity to render: the stored entity and its pick/omit
_Item = tuple[Entity, _Sel, _Sel]


def join_entities(
    entities: list[Entity],
    ctx: TermCompactor,
    fetch: Fetch,
    *,
    join: str,
    level: int = 1,
    fmt: Any = "normalized",
    sys_attrs: bool = False,
    attrs: set[str] | None = None,
    pick: _Sel = None,
    omit: _Sel = None,
    lang: str | None = None,
    datasets: set[str | None] | None = None,
) -> list[dict[str, Any]]:
    """``entities`` rendered with their linked entities (``join`` is inline or flat)."""
    if join not in JOINS:
        raise ValueError(f"unknown join {join!r}")
    joiner = _Joiner(
        ctx, fetch, {"fmt": fmt, "sys_attrs": sys_attrs, "lang": lang, "datasets": datasets}
    )
    roots = [(e, pick, omit) for e in entities]
    if join == "inline":
        return joiner.inline(roots, level, attrs)
    return joiner.flat(roots, level, attrs)


def _below(sel: _Sel, term: str) -> _Sel:
    return sel.below(term) if isinstance(sel, Projection) else None


def relationship_targets(entity: Entity, out: dict[str, Any], ctx: TermCompactor) -> list:
    """(term, [object ids]) for each Relationship of ``entity`` that ``out`` shows."""
    links: list[tuple[str, list[str]]] = []
    for iri, instances in entity.get("attrs", {}).items():
        term = ctx.compact_iri(iri)
        if term not in out:
            continue
        ids: list[str] = []
        for inst in instances:
            if inst.get("type") != "Relationship":
                continue
            obj = inst.get("object")
            for one in obj if isinstance(obj, list) else [obj]:
                if isinstance(one, str) and one not in ids:
                    ids.append(one)
        if ids:
            links.append((term, ids))
    return links


class _Joiner:
    def __init__(self, ctx: TermCompactor, fetch: Fetch, opts: dict[str, Any]):
        self.ctx = ctx
        self.fetch = fetch
        self.opts = opts

    def render(self, item: _Item, attrs: set[str] | None = None) -> dict[str, Any]:
        entity, pick, omit = item
        return render_entity(entity, self.ctx, attrs=attrs, pick=pick, omit=omit, **self.opts)

    def inline(self, items: list[_Item], level: int, attrs: set[str] | None = None) -> list:
        outs = [self.render(item, attrs) for item in items]
        if level <= 0 or not items:
            return outs
        pending: list[tuple[dict[str, Any], str, list[str], _Sel, _Sel]] = []
        for (entity, pick, omit), out in zip(items, outs, strict=True):
            for term, ids in relationship_targets(entity, out, self.ctx):
                pending.append((out, term, ids, _below(pick, term), _below(omit, term)))
        found = self.fetch(sorted({i for p in pending for i in p[2]}))
        subs = [(found[i], sp, so) for _, _, ids, sp, so in pending for i in ids if i in found]
        rendered = iter(self.inline(subs, level - 1))
        for out, term, ids, _, _ in pending:
            linked = {i: next(rendered) for i in ids if i in found}
            if linked:
                out[term] = self._attach(out[term], linked)
        return outs

    def _attach(self, shown: Any, linked: dict[str, dict[str, Any]]) -> Any:
        """One attribute as rendered, with its linked entities put in."""
        if isinstance(shown, list):
            return [self._attach(one, linked) for one in shown]
        if self.opts["fmt"] == "keyValues":  # the object id itself is replaced
            return linked.get(shown, shown) if isinstance(shown, str) else shown
        if isinstance(shown, dict) and "object" in shown:
            obj = shown["object"]
            if isinstance(obj, list):
                entities = [linked[o] for o in obj if o in linked]
                if entities:
                    shown["entity"] = entities
            elif obj in linked:
                shown["entity"] = linked[obj]
        return shown

    def flat(self, items: list[_Item], level: int, attrs: set[str] | None = None) -> list:
        result = [self.render(item, attrs) for item in items]
        seen = {entity["id"] for entity, _, _ in items}
        frontier = list(zip(items, result, strict=True))
        for _ in range(level):
            wanted: list[tuple[str, _Sel, _Sel]] = []
            for (entity, pick, omit), out in frontier:
                for term, ids in relationship_targets(entity, out, self.ctx):
                    for i in ids:
                        if i not in seen:
                            seen.add(i)
                            wanted.append((i, _below(pick, term), _below(omit, term)))
            if not wanted:
                break
            found = self.fetch([i for i, _, _ in wanted])
            frontier = []
            for i, pick, omit in wanted:
                if i in found:
                    item = (found[i], pick, omit)
                    out = self.render(item)
                    result.append(out)
                    frontier.append((item, out))
        return result

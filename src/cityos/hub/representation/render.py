"""Stored form -> the NGSI-LD output representations (GS CIM 009 v1.8 clause 4.5).

* ``normalized``: every attribute an object with ``type``; multi-attributes as arrays.
* ``concise``: ``type`` left out wherever a reader can infer it again (it stays only on a
  Property whose value looks like a GeoJSON geometry); an instance that has nothing but its
  value is written as the bare value (a Property with a scalar or plain-object value) or the
  bare geometry (a GeoProperty). Arrays are never written bare, and instances of a
  multi-attribute are always objects, so concise output parses back to the same data.
* ``keyValues`` (simplified): attribute -> its payload. Property and GeoProperty give the
  value, Relationship the object; the other types keep their payload key so the type stays
  readable: ``{"languageMap": …}``, ``{"json": …}``, ``{"vocab": …}``, ``{"valueList": …}``,
  ``{"objectList": …}``. A multi-attribute (more than one instance) gives
  ``{"dataset": {datasetId: payload, "@none": payload of the default instance}}`` (clause
  4.5.5), so that no instance is lost in the simplified form.

Times (``observedAt``, ``createdAt``, ``modifiedAt``, ``deletedAt``) are shown in their
shortest form, ``2020-08-01T12:03:00Z`` or ``…:00.25Z``, in every representation and in the
temporal API alike; they are stored in the hub's fixed form (UTC, six fraction digits) so that
``q``, ``orderBy`` and the history compare them as text.

Only ``ctx.compact_iri`` is used: attribute and sub-attribute names, entity types,
``objectType`` and ``vocab`` values are compacted; compound values are written as stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Protocol

from cityos.hub.model import INSTANCE_MEMBER_KEYS, Entity, Instance, display_time
from cityos.hub.representation.lang import choose_language
from cityos.hub.representation.names import is_geometry

Format = Literal["normalized", "concise", "keyValues"]
FORMATS: tuple[str, ...] = ("normalized", "concise", "keyValues")

_SYS_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt"})
# shown in the shortest form (display_time), stored in the hub's fixed one
_TIME_MEMBERS = frozenset({"observedAt", *_SYS_MEMBERS})
# Entity members pick/omit can name besides attributes.
_ENTITY_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt"})
# Payload keys kept as a wrapper in keyValues so the attribute type stays readable.
_KV_WRAPPED = {
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}


class TermCompactor(Protocol):
    def compact_iri(self, iri: str) -> str: ...


class _Selector:
    """``pick``/``omit`` (terms as the client wrote them) applied to top-level members."""

    def __init__(self, ctx: Any, pick: Iterable[str] | None, omit: Iterable[str] | None):
        self.pick = None if pick is None else self._resolve(ctx, pick)
        # ``omit=locatedAt{name}`` omits within the linked entity, not locatedAt itself
        nested = getattr(omit, "nested", {})
        omitted = None if omit is None else [t for t in omit if t not in nested]
        self.omit = set() if omitted is None else self._resolve(ctx, omitted)

    @staticmethod
    def _resolve(ctx: Any, terms: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for term in terms:
            out.add(term)
            if term not in _ENTITY_MEMBERS and hasattr(ctx, "expand_term"):
                out.add(ctx.expand_term(term))
        return out

    def keeps(self, *names: str) -> bool:
        """True if the member known by any of ``names`` (term, IRI) is to be shown."""
        if any(name in self.omit for name in names):
            return False
        return self.pick is None or any(name in self.pick for name in names)


def render_entity(
    entity: Entity,
    ctx: TermCompactor,
    *,
    fmt: Format = "normalized",
    sys_attrs: bool = False,
    attrs: set[str] | None = None,
    pick: Iterable[str] | None = None,
    omit: Iterable[str] | None = None,
    lang: str | None = None,
    datasets: set[str | None] | None = None,
) -> dict[str, Any]:
    """One stored entity in the representation the client asked for.

    ``attrs`` (expanded IRIs) projects the attributes; ``pick``/``omit`` (terms, or
    ``id``/``type``/``scope``/``createdAt``/``modifiedAt``) select top-level members, and
    may drop ``id`` and ``type`` too (v1.8). ``datasets`` keeps only the instances with
    these datasetIds (None: the default instance). ``lang`` turns every LanguageProperty into a
    Property holding the best-matching text and its ``lang``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown representation {fmt!r}")
    select = _Selector(ctx, pick, omit)
    out: dict[str, Any] = {}
    if select.keeps("id"):
        out["id"] = entity["id"]
    if select.keeps("type"):
        out["type"] = _one_or_many([ctx.compact_iri(t) for t in entity["type"]])
    if entity.get("scope") and select.keeps("scope"):
        out["scope"] = _one_or_many(list(entity["scope"]))
    if sys_attrs:
        for key in ("createdAt", "modifiedAt", "deletedAt"):
            if key in entity and select.keeps(key):
                out[key] = display_time(entity[key])
    for iri, instances in entity.get("attrs", {}).items():
        if attrs is not None and iri not in attrs:
            continue
        term = ctx.compact_iri(iri)
        if datasets is not None:
            instances = [i for i in instances if i.get("datasetId") in datasets]
        if not instances or not select.keeps(term, iri):
            continue
        out[term] = render_attribute(instances, ctx, fmt=fmt, sys_attrs=sys_attrs, lang=lang)
    return out


def render_attribute(
    instances: list[Instance],
    ctx: TermCompactor,
    *,
    fmt: Format = "normalized",
    sys_attrs: bool = False,
    lang: str | None = None,
) -> Any:
    """All instances of one attribute: an object (or bare value) for one, an array for more."""
    if fmt == "keyValues":
        if len(instances) == 1:
            return simplified_value(instances[0], ctx, lang=lang)
        return {
            "dataset": {
                inst.get("datasetId", "@none"): simplified_value(inst, ctx, lang=lang)
                for inst in instances
            }
        }
    if len(instances) == 1:
        return render_instance(instances[0], ctx, fmt=fmt, sys_attrs=sys_attrs, lang=lang)
    return [
        render_instance(inst, ctx, fmt=fmt, sys_attrs=sys_attrs, lang=lang, bare=False)
        for inst in instances
    ]


def render_instance(
    inst: Instance,
    ctx: TermCompactor,
    *,
    fmt: Format = "normalized",
    sys_attrs: bool = False,
    lang: str | None = None,
    bare: bool = True,
    instance_id: bool = False,
) -> Any:
    """One instance (and its sub-attributes) in normalized or concise form.

    ``bare=False`` keeps a concise instance an object even when it only has a value (inside
    an array, where a bare value would be read as something else). ``instance_id`` keeps
    ``instanceId`` (the temporal representation shows it; the others do not).
    """
    if fmt == "keyValues":
        return simplified_value(inst, ctx, lang=lang)
    if lang is not None and inst.get("type") == "LanguageProperty":
        inst = _language_as_property(inst, lang)
    attr_type = inst.get("type")
    out: dict[str, Any] = {}
    if fmt == "normalized" or (attr_type == "Property" and is_geometry(inst.get("value"))):
        out["type"] = attr_type
    for key, value in inst.items():
        if key == "type":
            continue
        if key in INSTANCE_MEMBER_KEYS:
            if key in _SYS_MEMBERS and not sys_attrs:
                continue
            if key == "instanceId" and not instance_id:
                continue
            if key in _TIME_MEMBERS:
                out[key] = display_time(value)
            elif key in ("objectType", "vocab"):
                out[key] = _compact_terms(value, ctx)
            else:
                out[key] = value
        else:
            out[ctx.compact_iri(key)] = render_instance(
                value, ctx, fmt=fmt, sys_attrs=sys_attrs, lang=lang, instance_id=instance_id
            )
    if fmt == "concise" and bare and list(out) == ["value"]:
        value = out["value"]
        if attr_type == "GeoProperty" or (attr_type == "Property" and _bare_safe(value)):
            return value
    return out


def simplified_value(inst: Instance, ctx: TermCompactor, *, lang: str | None = None) -> Any:
    """The keyValues form of one instance (see the module docstring)."""
    attr_type = inst.get("type")
    if attr_type == "Relationship":
        return inst.get("object")
    if attr_type == "LanguageProperty" and lang is not None:
        return choose_language(inst["languageMap"], lang)[1]
    key = _KV_WRAPPED.get(attr_type or "")
    if key is None:
        return inst.get("value")
    value = inst.get(key)
    return {key: _compact_terms(value, ctx) if key == "vocab" else value}


def _language_as_property(inst: Instance, lang: str) -> Instance:
    """A LanguageProperty seen through ``lang``: a Property with one text and its tag."""
    tag, text = choose_language(inst["languageMap"], lang)
    out: Instance = {"type": "Property", "value": text, "lang": tag}
    out.update((k, v) for k, v in inst.items() if k not in ("type", "languageMap"))
    return out


def _bare_safe(value: Any) -> bool:
    """A value a concise reader would take back as this Property's value."""
    if isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, dict):
        return not is_geometry(value) and not any(k in INSTANCE_MEMBER_KEYS for k in value)
    return False


def _compact_terms(value: Any, ctx: TermCompactor) -> Any:
    if isinstance(value, list):
        return [ctx.compact_iri(v) for v in value]
    return ctx.compact_iri(value)


def _one_or_many(items: list[str]) -> str | list[str]:
    return items[0] if len(items) == 1 else items

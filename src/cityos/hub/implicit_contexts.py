"""Implicitly created @contexts (clause 5.13, kind ``ImplicitlyCreated``).

A subscription made with a compound @context (a list of several, or an inline object) has
its notifications read with all of it, but a plain-JSON notification can name one @context
only, in its ``Link`` header. The hub therefore hosts the compound @context itself, under
one URL (``/ngsi-ld/v1/jsonldContexts/{id}``), and links to that: before it, a receiver
was linked to the first URL of the list and read the terms of the others wrongly.

The id is a digest of the @context, so every subscription that uses the same compound
@context shares one implicit document. The subscription keeps its own @context for the hub's
work (matching, rendering); the implicit one only names it for receivers, and is put back
if an operator deleted it while a subscription still links to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from cityos.hub.model import now_iso
from cityos.hub.store.base import Store, StoredContext

# where a subscription document keeps the URL of its implicit @context (never shown as is:
# the API shows it as ``jsonldContext`` when the subscription names none of its own)
IMPLICIT_KEY = "implicitContext"
KIND = "implicit"


def is_compound(source: Any) -> bool:
    """More than one URL can name: a list of several, or anything inline."""
    if isinstance(source, dict):
        return True
    if isinstance(source, list):
        return len(source) > 1 or any(not isinstance(c, str) for c in source)
    return False


def implicit_id(source: Any) -> str:
    """The same @context, the same id (object keys in any order)."""
    return hashlib.sha256(orjson.dumps(source, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def keep_implicit(store: Store, source: Any, url_for: Callable[[str], str]) -> str | None:
    """The URL of the implicit @context of a compound ``source`` (created when new), or None
    when ``source`` is one URL or absent and needs none."""
    if not is_compound(source):
        return None
    ctx_id = implicit_id(source)
    found = store.get_context(ctx_id)
    if found is not None and found.kind == KIND:
        return found.url
    return _put(store, ctx_id, url_for(ctx_id), source)


def name_compound_context(store: Store, sub: dict[str, Any], url_for: Callable[[str], str]) -> None:
    """Give a subscription document about to be kept the implicit @context of its compound
    @context, unless its ``jsonldContext`` names one (that one names its terms then)."""
    sub.pop(IMPLICIT_KEY, None)
    if sub.get("jsonldContext"):
        return
    url = keep_implicit(store, sub.get("@context"), url_for)
    if url is not None:
        sub[IMPLICIT_KEY] = url


def restore_implicit(store: Store, sub: dict[str, Any]) -> None:
    """Put back a subscription's implicit @context if it was deleted, under the URL the
    subscription links to, so that its receivers can still read its notifications."""
    url = sub.get(IMPLICIT_KEY)
    source = sub.get("@context")
    if not url or not is_compound(source):
        return
    ctx_id = implicit_id(source)
    if store.get_context(ctx_id) is None:
        _put(store, ctx_id, url, source)


def _put(store: Store, ctx_id: str, url: str, source: Any) -> str:
    store.put_context(StoredContext(ctx_id, url, {"@context": source}, KIND, now_iso()))
    return url

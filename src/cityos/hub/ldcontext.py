"""JSON-LD @context handling for the hub: resolve a request's @context, expand and compact terms.

Why our own processor: the hub expands every attribute name and entity type of every request
and compacts them again on the way out. PyLD does this correctly but processes whole
documents; here a resolved :class:`Context` answers one term in a dict lookup after first use.
Only what NGSI-LD needs is implemented (vocabulary-relative IRI expansion of keys and types, as
the JSON-LD 1.1 Context Processing and IRI Expansion/Compaction algorithms define it); property
tests check it against PyLD, which the hub still uses as reference processor through
:func:`pyld_loader` (a document loader that never touches the network).

NGSI-LD rules applied on top of JSON-LD: the core context is always applied last, so its terms
cannot be overridden, and its ``@vocab`` gives every undefined term an IRI under
``https://uri.etsi.org/ngsi-ld/default-context/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from cityos.hub.errors import BadRequestData, LdContextNotAvailable, NgsiLdError
from cityos.hub.netguard import AsyncGuardedTransport, DestinationError

log = logging.getLogger("cityos.hub.ldcontext")

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
#: URLs served by the built-in core context (older versions are subsets of v1.8).
CORE_CONTEXT_ALIASES = frozenset(
    {
        CORE_CONTEXT_URL,
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.5.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.4.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    }
)
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
JSONLD_MEDIA_TYPE = "application/ld+json"

KEYWORDS = frozenset(
    {
        "@base", "@container", "@context", "@direction", "@graph", "@id", "@import",
        "@included", "@index", "@json", "@language", "@list", "@nest", "@none", "@prefix",
        "@propagate", "@protected", "@reverse", "@set", "@type", "@value", "@version", "@vocab",
    }
)  # fmt: skip
_KEYWORD_FORM = re.compile(r"^@[a-zA-Z]+$")
_ABSOLUTE_IRI = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*|_):[^\s]*$")
_GEN_DELIM_END = re.compile(r"[:/?#\[\]@]$")
_TERM_DEF_KEYS = frozenset(
    {"@container", "@id", "@language", "@reverse", "@type", "@context", "@direction",
     "@index", "@nest", "@prefix", "@protected"}
)  # fmt: skip
_CONTAINERS = frozenset({"@list", "@set", "@index", "@language", "@graph", "@id", "@type"})
_CACHE_LIMIT = 65536  # per-Context memo size; cleared when exceeded (bounds memory on abuse)


def _is_absolute_iri(value: str) -> bool:
    return bool(_ABSOLUTE_IRI.match(value))


def check_context_url(url: str) -> str:
    """``url`` unless no HTTP client could ask for it (a bad port, a broken IPv6 literal, a
    host that is not one): then BadRequestData, before any lookup or fetch, so a malformed
    @context URL is the client's 400, never the hub's 500."""
    if url in CORE_CONTEXT_ALIASES:
        return url
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError for a port that is not a number in range
        if parts.scheme in ("http", "https"):
            httpx.URL(url)  # what the fetch would parse; InvalidURL is not a ValueError
    except (ValueError, httpx.InvalidURL) as exc:
        raise BadRequestData(
            f"invalid @context: {url[:200]!r} is not a valid URL ({exc})"
        ) from None
    return url


@dataclass(frozen=True, slots=True)
class TermDef:
    """One term definition. ``iri`` None means the term is explicitly mapped to null."""

    iri: str | None
    type: str | None = None  # expanded @type mapping, or @id / @vocab / @json / @none
    container: tuple[str, ...] = ()
    prefix: bool = False  # usable as the prefix of a compact IRI
    reverse: bool = False
    language: str | None = None


# ---------------------------------------------------------------------------------------
# the resolved context
# ---------------------------------------------------------------------------------------


class Context:
    """A resolved @context: maps terms to IRIs and back. Immutable; lookups are memoised."""

    __slots__ = ("terms", "vocab", "source", "_expand", "_compact", "_inverse", "_prefixes")

    def __init__(
        self, terms: Mapping[str, TermDef | None], vocab: str | None, source: Any = None
    ) -> None:
        self.terms: Mapping[str, TermDef | None] = MappingProxyType(dict(terms))
        self.vocab = vocab
        self.source = source  # the @context value this was resolved from (None: core only)
        self._expand: dict[str, str] = {}
        self._compact: dict[str, str] = {}
        # iri -> shortest (then least) term; ties resolved as JSON-LD's inverse context does
        inverse: dict[str, str] = {}
        for term in sorted(self.terms, key=lambda t: (len(t), t)):
            d = self.terms[term]
            if d is None or d.iri is None or d.reverse:
                continue
            inverse.setdefault(d.iri, term)
        self._inverse = inverse
        self._prefixes = sorted(
            (t, d.iri)
            for t, d in self.terms.items()
            if d is not None and d.iri and ":" not in t and not d.reverse
        )

    def __repr__(self) -> str:
        return f"<Context {len(self.terms)} terms, vocab={self.vocab!r}>"

    def definition(self, term: str) -> TermDef | None:
        """The term's definition (for its @type / @container), or None if it has none."""
        return self.terms.get(term)

    def expand_term(self, term: str) -> str:
        """The IRI a property name or type name stands for (vocabulary-relative expansion).

        Raises BadRequestData when JSON-LD would drop the term: mapped to null, a reverse
        property, a non-keyword of the form ``@xyz``, or a relative IRI with no ``@vocab``.
        """
        iri = self._expand.get(term)
        if iri is None:
            iri = self._expand_uncached(term)
            if len(self._expand) >= _CACHE_LIMIT:
                self._expand.clear()
            self._expand[term] = iri
        return iri

    def _expand_uncached(self, term: str) -> str:
        iri = _expand_iri(self.terms, self.vocab, term)
        if iri is None or not (iri in KEYWORDS or _is_absolute_iri(iri)):
            raise BadRequestData(f"term {term!r} cannot be expanded to an IRI with the @context")
        d = self.terms.get(term)
        if d is not None and d.reverse:
            raise BadRequestData(f"term {term!r} is a reverse property, not supported in NGSI-LD")
        return iri

    def compact_iri(self, iri: str) -> str:
        """The shortest term for ``iri``, else a term relative to @vocab, else a compact IRI,
        else ``iri`` itself. Value-agnostic: a term's @type/@container do not matter."""
        term = self._compact.get(iri)
        if term is None:
            term = self._compact_uncached(iri)
            if len(self._compact) >= _CACHE_LIMIT:
                self._compact.clear()
            self._compact[iri] = term
        return term

    def _round_trips(self, candidate: str, iri: str) -> bool:
        try:
            return self.expand_term(candidate) == iri
        except BadRequestData:
            return False

    def _compact_uncached(self, iri: str) -> str:
        term = self._inverse.get(iri)
        if term is not None:
            return term
        if iri in KEYWORDS:
            return iri
        vocab = self.vocab
        if vocab and iri.startswith(vocab) and len(iri) > len(vocab):
            suffix = iri[len(vocab) :]
            if suffix not in self.terms and self._round_trips(suffix, iri):
                return suffix
        best: str | None = None
        for prefix, prefix_iri in self._prefixes:
            if prefix_iri == iri or not iri.startswith(prefix_iri):
                continue
            curie = prefix + ":" + iri[len(prefix_iri) :]
            d = self.terms[prefix]
            existing = self.terms.get(curie)
            usable = (d is not None and d.prefix and curie not in self.terms) or (
                existing is not None and existing.iri == iri
            )
            if (
                usable
                and (best is None or (len(curie), curie) < (len(best), best))
                and self._round_trips(curie, iri)
            ):
                best = curie
        return best if best is not None else iri


def _expand_iri(
    terms: Mapping[str, TermDef | None],
    vocab: str | None,
    value: str,
    define: Callable[[str], None] | None = None,
) -> str | None:
    """JSON-LD IRI expansion with vocab=true. ``define`` creates pending local terms first."""
    if value in KEYWORDS:
        return value
    if _KEYWORD_FORM.match(value):
        return None
    if define is not None:
        define(value)
    if value in terms:
        d = terms[value]
        return None if d is None else d.iri
    colon = value.find(":")
    if colon > 0:
        prefix, suffix = value[:colon], value[colon + 1 :]
        if prefix == "_" or suffix.startswith("//"):
            return value
        if define is not None:
            define(prefix)
        d = terms.get(prefix)
        if d is not None and d.iri is not None and d.prefix:
            return d.iri + suffix
        if _is_absolute_iri(value):
            return value
    if vocab is not None:
        return vocab + value
    return value


# ---------------------------------------------------------------------------------------
# context processing
# ---------------------------------------------------------------------------------------


class _Active:
    """The active context while processing: term definitions and @vocab."""

    __slots__ = ("terms", "vocab")

    def __init__(self, terms: dict[str, TermDef | None] | None = None, vocab: str | None = None):
        self.terms: dict[str, TermDef | None] = terms if terms is not None else {}
        self.vocab = vocab


def _bad(where: str, what: str) -> BadRequestData:
    return BadRequestData(f"invalid @context{where}: {what}")


class _LocalDefiner:
    """Creates the term definitions of one local context, resolving dependencies between them."""

    def __init__(self, active: _Active, local: Mapping[str, Any], where: str) -> None:
        self.active = active
        self.local = local
        self.where = where
        self.defined: dict[str, bool] = {}

    def define_if_pending(self, term: str) -> None:
        if term in self.local and self.defined.get(term) is not True:
            self.define(term)

    def define(self, term: str) -> None:
        defined = self.defined
        if term in defined:
            if defined[term]:
                return
            raise _bad(self.where, f"cyclic IRI mapping for term {term!r}")
        defined[term] = False
        try:
            self._create(term)
        finally:
            defined[term] = True

    def _expand(self, value: str) -> str | None:
        return _expand_iri(self.active.terms, self.active.vocab, value, self.define_if_pending)

    def _create(self, term: str) -> None:
        active, where = self.active, self.where
        value = self.local[term]
        if term == "@type" and isinstance(value, dict):
            if not value or set(value) - {"@container", "@id", "@protected"}:
                raise _bad(where, "keywords cannot be redefined (@type)")
            return  # @type's container/protection does not change any IRI
        if term in KEYWORDS:
            raise _bad(where, f"keyword {term} cannot be redefined")
        if _KEYWORD_FORM.match(term):
            return  # reserved for future keywords: ignored, as JSON-LD says
        if term == "":
            raise _bad(where, "a term cannot be the empty string")
        previous = active.terms.pop(term, None) if term in active.terms else None
        simple = value is None or isinstance(value, str)
        if simple:
            value = {"@id": value}
        if not isinstance(value, dict):
            raise _bad(where, f"definition of term {term!r} must be a string, object or null")
        unknown = set(value) - _TERM_DEF_KEYS
        if unknown:
            raise _bad(where, f"term {term!r} has unknown member(s) {sorted(unknown)}")
        colon = term.find(":")
        iri: str | None = None
        has_iri = False
        reverse = False
        prefix_flag = False
        if "@reverse" in value:
            if "@id" in value or "@nest" in value:
                raise _bad(where, f"reverse term {term!r} must not have @id or @nest")
            rev = value["@reverse"]
            if not isinstance(rev, str):
                raise _bad(where, f"@reverse of term {term!r} must be a string")
            if _KEYWORD_FORM.match(rev):
                self._restore(term, previous)
                return
            iri = self._expand(rev)
            if iri is None or not _is_absolute_iri(iri):
                raise _bad(where, f"@reverse of term {term!r} is not an absolute IRI")
            has_iri, reverse = True, True
        elif "@id" in value:
            id_ = value["@id"]
            if id_ is not None and not isinstance(id_, str):
                raise _bad(where, f"@id of term {term!r} must be a string or null")
            if id_ is None:
                has_iri = True
            elif id_ not in KEYWORDS and _KEYWORD_FORM.match(id_):
                self._restore(term, previous)
                return
            elif id_ != term:
                iri = self._expand(id_)
                if iri is None or not (iri in KEYWORDS or _is_absolute_iri(iri)):
                    raise _bad(
                        where, f"term {term!r} maps to {id_!r}, which is not an absolute IRI"
                    )
                if re.match(r".*((:[^:])|/)", term):
                    # a term that looks like an IRI must expand to its own definition
                    self.defined[term] = True
                    saved = active.terms.pop(term, None) if term in active.terms else None
                    own = _expand_iri(active.terms, active.vocab, term, self.define_if_pending)
                    if saved is not None:
                        active.terms[term] = saved
                    if own != iri:
                        raise _bad(
                            where, f"term {term!r} has the form of an IRI but maps to {iri!r}"
                        )
                    self.defined[term] = False
                has_iri = True
                prefix_flag = (
                    simple
                    and colon <= 0
                    and (iri.startswith("_:") or bool(_GEN_DELIM_END.search(iri)))
                )
        if not has_iri:
            if colon > 0:
                prefix = term[:colon]
                if prefix in self.local:
                    self.define(prefix)
                pd = active.terms.get(prefix)
                iri = pd.iri + term[colon + 1 :] if pd is not None and pd.iri else term
            elif active.vocab is not None:
                iri = active.vocab + term
            else:
                raise _bad(where, f"term {term!r} has no @id and there is no @vocab")
        type_ = value.get("@type")
        if "@type" in value:
            if not isinstance(type_, str):
                raise _bad(where, f"@type of term {term!r} must be a string")
            if type_ not in ("@id", "@vocab", "@json", "@none"):
                type_ = self._expand(type_)
                if type_ is None or not _is_absolute_iri(type_) or type_.startswith("_:"):
                    raise _bad(where, f"@type of term {term!r} is not an absolute IRI")
        container: tuple[str, ...] = ()
        if "@container" in value:
            raw = value["@container"]
            items = raw if isinstance(raw, list) else [raw]
            if not all(isinstance(c, str) and c in _CONTAINERS for c in items):
                raise _bad(where, f"@container of term {term!r} is invalid: {raw!r}")
            container = tuple(items)
            if "@type" in container and type_ is None:
                type_ = "@id"
        if "@prefix" in value:
            if ":" in term or "/" in term:
                raise _bad(where, f"@prefix is not allowed on term {term!r}")
            if not isinstance(value["@prefix"], bool):
                raise _bad(where, f"@prefix of term {term!r} must be a boolean")
            if iri in KEYWORDS:
                raise _bad(where, f"term {term!r} maps to a keyword and cannot be a prefix")
            prefix_flag = value["@prefix"]
        language = value.get("@language") if "@type" not in value else None
        active.terms[term] = (
            None
            if iri is None
            else TermDef(
                iri=iri,
                type=type_,
                container=container,
                prefix=prefix_flag,
                reverse=reverse,
                language=language if isinstance(language, str) else None,
            )
        )

    def _restore(self, term: str, previous: TermDef | None) -> None:
        if previous is not None:
            self.active.terms[term] = previous


def _process_local(
    active: _Active, local: Mapping[str, Any], where: str, load: Callable[[str], Any]
) -> None:
    """Apply one context object (a dict) to ``active`` in place."""
    if "@version" in local and local["@version"] != 1.1:
        raise _bad(where, "@version must be 1.1")
    if "@import" in local:
        url = local["@import"]
        if not isinstance(url, str):
            raise _bad(where, "@import must be a URL string")
        imported = load(url)
        if not isinstance(imported, dict):
            raise _bad(where, f"@import {url} must reference a single context object")
        if "@import" in imported:
            raise _bad(where, f"@import {url} references a context that itself has @import")
        local = {**imported, **{k: v for k, v in local.items() if k != "@import"}}
    if "@vocab" in local:
        vocab = local["@vocab"]
        if vocab is None:
            active.vocab = None
        elif not isinstance(vocab, str):
            raise _bad(where, "@vocab must be a string or null")
        else:
            expanded = _expand_iri(active.terms, active.vocab, vocab)
            if expanded is None or not _is_absolute_iri(expanded):
                raise _bad(where, f"@vocab {vocab!r} is not an absolute IRI")
            active.vocab = expanded
    for key in ("@language", "@direction"):
        if key in local and local[key] is not None and not isinstance(local[key], str):
            raise _bad(where, f"{key} must be a string or null")
    for key in ("@propagate", "@protected"):
        if key in local and not isinstance(local[key], bool):
            raise _bad(where, f"{key} must be a boolean")
    definer = _LocalDefiner(active, local, where)
    for term in local:
        if term in (
            "@base", "@direction", "@import", "@language", "@propagate", "@protected",
            "@version", "@vocab",
        ):  # fmt: skip
            continue
        definer.define(term)


# ---------------------------------------------------------------------------------------
# the core context
# ---------------------------------------------------------------------------------------


@cache
def core_document() -> dict[str, Any]:
    """The built-in NGSI-LD core context document (v1.8), shipped in the package."""
    text = (
        resources.files("cityos.hub")
        .joinpath("contexts/ngsi-ld-core-context-v1.8.jsonld")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


@cache
def _core_active() -> _Active:
    active = _Active()
    _process_local(active, core_document()["@context"], " (core)", _no_remote)
    return active


def _no_remote(url: str) -> Any:
    raise LdContextNotAvailable(f"@context {url} cannot be loaded here")


@cache
def core_context() -> Context:
    """The core context alone (what a request without any @context gets)."""
    active = _core_active()
    return Context(active.terms, active.vocab, None)


# ---------------------------------------------------------------------------------------
# resolving @context values (URLs, inline objects, lists)
# ---------------------------------------------------------------------------------------


class ContextResolver:
    """Turns a request's @context value into a :class:`Context`, caching both documents and
    results. Remote contexts come from the built-in core, the hub's store (``load``), or an
    HTTP fetch from an allowlisted host (then kept through ``save``); nothing else.

    A fetch never runs on an event loop: the API awaits :meth:`prepare` first, which
    resolves in a worker thread; a fetch asked for on a loop thread anyway (a caller that
    did not prepare) is started in the background and the caller told to retry (503).
    Each fetch has a total deadline (``timeout``: connecting, headers and body together, so a
    server that drips bytes cannot stretch it); one fetch per URL at a time, and a failed
    URL is not asked again for ``retry_failed_s``."""

    def __init__(
        self,
        *,
        load: Callable[[str], dict[str, Any] | None] | None = None,
        save: Callable[[str, dict[str, Any]], None] | None = None,
        allow_hosts: Iterable[str] = (),
        timeout: float = 5.0,
        max_bytes: int = 1 << 20,
        max_depth: int = 8,
        cache_size: int = 512,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_private_hosts: Iterable[str] = (),
        retry_failed_s: float = 5.0,
        mirrors: Mapping[str, str] | None = None,
    ) -> None:
        self._load = load
        # URL prefix -> the prefix of a local copy: fetched there, known by the original URL
        self.mirrors = dict(sorted((mirrors or {}).items(), key=lambda kv: -len(kv[0])))
        self._save = save
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)
        # hardening: hosts that may resolve to loopback/private addresses (cityos.hub.netguard)
        self.allow_private_hosts = frozenset(h.lower() for h in allow_private_hosts)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self._cache_size = cache_size
        # lets tests serve HTTP without a network; None: the network, through the SSRF guard
        self._transport = transport
        self._contexts: OrderedDict[tuple[Any, ...], Context] = OrderedDict()
        self._documents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.retry_failed_s = retry_failed_s
        self._failed: dict[str, tuple[float, NgsiLdError]] = {}  # url -> (until, error)
        self._fetching: dict[str, threading.Event] = {}  # url -> set when its fetch ends
        self.fetches = 0  # HTTP fetches started (tests, diagnostics)

    # -- public ---------------------------------------------------------------------------
    def resolve(self, value: Any, *, core: bool = True) -> Context:
        """The Context for ``value``: None (core only), a URL, an inline context object (or a
        document ``{"@context": ...}``), or a list of those. The core context is applied last
        unless ``core`` is False (only for tests and tools)."""
        if isinstance(value, dict) and "@context" in value:
            value = value["@context"]
        if value is None and core:
            return core_context()
        key = self._key(value, core)
        with self._lock:
            hit = self._contexts.get(key)
            if hit is not None:
                self._contexts.move_to_end(key)
                return hit
        active = _Active()
        self._process(active, value, 0, ())
        if core:
            base = _core_active()
            active.terms.update(base.terms)
            active.vocab = base.vocab
        ctx = Context(active.terms, active.vocab, value)
        with self._lock:
            self._contexts[key] = ctx
            while len(self._contexts) > self._cache_size:
                self._contexts.popitem(last=False)
        return ctx

    def document(self, url: str, *, fetch: bool = True) -> dict[str, Any]:
        """The JSON-LD document (a dict with "@context") served for ``url``."""
        if url in CORE_CONTEXT_ALIASES:
            return core_document()
        check_context_url(url)
        with self._lock:
            doc = self._documents.get(url)
        if doc is not None:
            return doc
        doc = self._load(url) if self._load is not None else None
        if doc is not None:
            _check_document(url, doc)
        elif fetch and self.host_allowed(self.fetch_url(url)):
            doc = self._fetch_once(url)
        else:
            raise LdContextNotAvailable(
                f"@context {url} is not available: it is neither built in nor stored in the "
                "hub, and its host is not on the allowlist for fetching"
            )
        with self._lock:
            self._documents[url] = doc
            while len(self._documents) > self._cache_size:
                self._documents.popitem(last=False)
        return doc

    async def prepare(self, value: Any) -> None:
        """Resolve ``value`` in a worker thread when it is not cached, so that fetching its
        remote documents never blocks the event loop; a failure is left for the caller's
        own :meth:`resolve` to raise (failed fetches are remembered, not repeated)."""
        if value is None:
            return
        try:
            key = self._key(value, True)
        except NgsiLdError:
            return
        with self._lock:
            if key in self._contexts:
                return
        await asyncio.to_thread(self._prepare_quietly, value)

    def _prepare_quietly(self, value: Any) -> None:
        with contextlib.suppress(NgsiLdError):
            self.resolve(value)

    def reload(self, url: str) -> dict[str, Any]:
        """Fetch a cached @context again from its URL (``DELETE …?reload=true``), replacing
        the kept copy; a failure (503) keeps the old one. Never call on an event loop."""
        if not self.host_allowed(self.fetch_url(url)):
            raise LdContextNotAvailable(f"@context {url} may not be fetched (allowlist)", url=url)
        with self._lock:
            self._failed.pop(url, None)
        doc = self._fetch_and_keep(url)
        self.invalidate(url)
        with self._lock:
            self._documents[url] = doc
        return doc

    def invalidate(self, url: str | None = None) -> None:
        """Forget cached documents (one URL, or all) and every resolved context; the hub calls
        this when a stored context is replaced or deleted."""
        with self._lock:
            if url is None:
                self._documents.clear()
            else:
                self._documents.pop(url, None)
            self._contexts.clear()

    def fetch_url(self, url: str) -> str:
        """Where ``url`` is fetched from: its mirror when one is configured (the longest
        matching prefix), else itself. The document keeps ``url`` as its name."""
        for prefix, mirror in self.mirrors.items():
            if url.startswith(prefix):
                return mirror + url[len(prefix) :]
        return url

    def host_allowed(self, url: str) -> bool:
        """Whether ``url`` may be fetched: http(s) and a host on the allowlist (``*.x`` works)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            return False
        if host in self.allow_hosts:
            return True
        return any(h.startswith("*.") and host.endswith(h[1:]) for h in self.allow_hosts)

    def private_allowed(self, host: str) -> bool:
        """Whether ``host`` may resolve to loopback/private addresses (an operator's choice)."""
        host = host.lower().strip("[]")
        return host in self.allow_private_hosts or any(
            h.startswith("*.") and host.endswith(h[1:]) for h in self.allow_private_hosts
        )

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _key(value: Any, core: bool) -> tuple[Any, ...]:
        if isinstance(value, str):
            return ("url", value, core)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ("urls", tuple(value), core)
        try:
            dumped = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:
            raise BadRequestData(f"invalid @context: not JSON ({exc})") from exc
        return ("json", dumped, core)

    def _process(self, active: _Active, value: Any, depth: int, stack: tuple[str, ...]) -> None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                active.terms, active.vocab = {}, None
            elif isinstance(item, str):
                self._process_url(active, item, depth, stack)
            elif isinstance(item, dict):
                where = f" {stack[-1]}" if stack else ""
                _process_local(active, item, where, lambda url: self._import(url, depth, stack))
            else:
                raise BadRequestData(
                    "invalid @context: each entry must be a URL string, an object or null, "
                    f"got {type(item).__name__}"
                )

    def _process_url(self, active: _Active, url: str, depth: int, stack: tuple[str, ...]) -> None:
        if not _is_absolute_iri(url):
            raise BadRequestData(f"invalid @context: {url!r} is not an absolute URL")
        check_context_url(url)
        if depth >= self.max_depth or url in stack:
            raise BadRequestData(
                f"invalid @context: remote contexts nest deeper than {self.max_depth} "
                f"or recurse at {url}"
            )
        if url in CORE_CONTEXT_ALIASES:
            base = _core_active()
            active.terms.update(base.terms)
            active.vocab = base.vocab
            return
        self._process(active, self.document(url)["@context"], depth + 1, (*stack, url))

    def _import(self, url: str, depth: int, stack: tuple[str, ...]) -> Any:
        if depth >= self.max_depth:
            raise BadRequestData(f"invalid @context: @import {url} nests too deep")
        return self.document(url)["@context"]

    def _fetch_once(self, url: str) -> dict[str, Any]:
        """The fetched, checked and saved document; one fetch per URL at a time, never on an
        event loop, and a recent failure raised again without asking."""
        while True:
            with self._lock:
                failed = self._failed.get(url)
                if failed is not None and failed[0] > time.monotonic():
                    raise failed[1]
                doc = self._documents.get(url)
                if doc is not None:
                    return doc
                running = self._fetching.get(url)
                on_loop = _on_event_loop()
                if running is None:
                    running = self._fetching[url] = threading.Event()
                    if not on_loop:
                        break  # this thread fetches
                    threading.Thread(target=self._fetch_quietly, args=(url,), daemon=True).start()
            if on_loop:
                log.warning(
                    "@context %s asked for on the event loop: fetched in the background", url
                )
                raise LdContextNotAvailable(
                    f"@context {url} is being fetched; retry in a moment", url=url
                )
            running.wait(self.timeout + 1.0)  # another thread fetches it: its outcome is ours
        try:
            return self._fetch_and_keep(url)
        finally:
            with self._lock:
                self._fetching.pop(url, None)
            running.set()

    def _fetch_quietly(self, url: str) -> None:
        try:
            with contextlib.suppress(NgsiLdError):
                self._fetch_and_keep(url)
        finally:
            with self._lock:
                event = self._fetching.pop(url, None)
            if event is not None:
                event.set()

    def _fetch_and_keep(self, url: str) -> dict[str, Any]:
        try:
            doc = self._fetch(url)
            _check_document(url, doc)
        except NgsiLdError as exc:
            with self._lock:
                self._failed[url] = (time.monotonic() + self.retry_failed_s, exc)
                if len(self._failed) > self._cache_size:
                    self._failed.pop(next(iter(self._failed)))
            raise
        if self._save is not None:
            self._save(url, doc)
        with self._lock:
            self._failed.pop(url, None)
            self._documents[url] = doc
        return doc

    def _fetch(self, url: str) -> Any:
        """GET ``url`` within ``timeout`` seconds in all (asyncio's deadline over the whole
        exchange; httpx's own timeouts are per read, which a drip of bytes keeps alive)."""
        self.fetches += 1
        try:
            return asyncio.run(self._fetch_within_deadline(self.fetch_url(url)))
        except TimeoutError:
            raise LdContextNotAvailable(
                f"@context {url} could not be fetched within {self.timeout:g} s "
                "(context_fetch_timeout_s)",
                url=url,
            ) from None

    async def _fetch_within_deadline(self, url: str) -> Any:
        async with asyncio.timeout(self.timeout):
            return await self._fetch_async(url)

    async def _fetch_async(self, url: str) -> Any:
        # hardening (cityos.hub.netguard): every connection, so every redirect hop, goes
        # to an address resolved and checked at connect time; loopback/private ones only for
        # hosts in allow_private_hosts
        transport = self._transport or AsyncGuardedTransport(allow_private=self.private_allowed)
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, transport=transport
            ) as client:
                for _hop in range(5):
                    if not self.host_allowed(url):
                        raise LdContextNotAvailable(
                            f"@context fetch redirected to {url}, whose host is not allowlisted"
                        )
                    async with client.stream(
                        "GET", url, headers={"Accept": f"{JSONLD_MEDIA_TYPE}, application/json"}
                    ) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            url = urljoin(url, resp.headers["location"])
                            continue
                        if resp.status_code != 200:
                            raise LdContextNotAvailable(
                                f"@context {url} could not be fetched: HTTP {resp.status_code}"
                            )
                        body = await self._read_capped(url, resp)
                        break
                else:
                    raise LdContextNotAvailable(f"@context {url}: too many redirects")
        except DestinationError as exc:  # hardening: refused by the SSRF guard
            hint = (
                " (allow it with CITYOS_CONTEXT_ALLOW_PRIVATE_HOSTS)"
                if getattr(exc, "allowable", False)
                else ""
            )
            raise LdContextNotAvailable(f"@context {url} refused: {exc}{hint}") from None
        except httpx.HTTPError as exc:
            raise LdContextNotAvailable(f"@context {url} could not be fetched: {exc}") from exc
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequestData(f"invalid @context: {url} is not JSON ({exc})") from exc

    async def _read_capped(self, url: str, resp: httpx.Response) -> bytes:
        declared = resp.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise LdContextNotAvailable(
                f"@context {url} is larger than the {self.max_bytes}-byte limit"
            )
        buf = bytearray()
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) > self.max_bytes:
                raise LdContextNotAvailable(
                    f"@context {url} is larger than the {self.max_bytes}-byte limit"
                )
        return bytes(buf)


MAX_PREPARED = 32  # distinct @context values one request prepares off the loop


async def prepare_request(resolver: ContextResolver, link: str | None, body: Any = None) -> None:
    """Fetch what a request's @context values need (its Link header, the ``@context`` of its
    body or of each body item) in a worker thread, before its handler resolves them on the
    event loop; errors are the handler's to raise."""
    values: list[Any] = []
    if link:
        with contextlib.suppress(NgsiLdError):
            values.append(parse_link_header(link))
    items = body if isinstance(body, list) else [body]
    values += [i["@context"] for i in items if isinstance(i, dict) and "@context" in i]
    seen: set[str] = set()
    for value in values:
        marker = orjson.dumps(value, default=str).decode()
        if value is None or marker in seen or len(seen) >= MAX_PREPARED:
            continue
        seen.add(marker)
        await resolver.prepare(value)


def _on_event_loop() -> bool:
    """Whether this thread is running an asyncio event loop (nothing may block it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_document(url: str, doc: Any) -> None:
    if not isinstance(doc, dict) or "@context" not in doc:
        raise BadRequestData(f"invalid @context: {url} is not a JSON object with an @context")


# ---------------------------------------------------------------------------------------
# Link headers
# ---------------------------------------------------------------------------------------

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_PARAM = re.compile(r';\s*([A-Za-z0-9!#$&+\-.^_`|~*]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')


def parse_link_header(value: str) -> str | None:
    """The URL of the JSON-LD context link in a Link header (how NGSI-LD passes an @context
    with ``application/json``), or None if there is none. Two different ones are an error."""
    found: list[str] = []
    for match in _LINK.finditer(value):
        url, params = match.group(1).strip(), match.group(2)
        for pm in _PARAM.finditer(params):
            if pm.group(1).lower() != "rel":
                continue
            rel = pm.group(2) if pm.group(2) is not None else pm.group(3)
            if CONTEXT_REL in rel.split():
                found.append(url)
    if not found:
        return None
    if len(set(found)) > 1:
        raise BadRequestData("Link header carries more than one JSON-LD context link")
    if not _is_absolute_iri(found[0]):
        raise BadRequestData(f"Link header context {found[0]!r} is not an absolute URL")
    return found[0]


def link_header_for(url: str) -> str:
    """A Link header value that points to the @context ``url``."""
    return f'<{url}>; rel="{CONTEXT_REL}"; type="{JSONLD_MEDIA_TYPE}"'


# ---------------------------------------------------------------------------------------
# PyLD
# ---------------------------------------------------------------------------------------


def pyld_loader(resolver: ContextResolver) -> Callable[..., dict[str, Any]]:
    """A PyLD document loader serving only built-in and stored contexts, never the network."""
    from pyld.jsonld import JsonLdError

    def load(url: str, options: Any = None) -> dict[str, Any]:
        try:
            doc = resolver.document(url, fetch=False)
        except (LdContextNotAvailable, BadRequestData) as exc:
            raise JsonLdError(
                exc.detail, "jsonld.LoadDocumentError", code="loading document failed"
            ) from exc
        return {
            "contentType": JSONLD_MEDIA_TYPE,
            "contextUrl": None,
            "documentUrl": url,
            "document": doc,
        }

    return load

"""Tests for @context resolution, term expansion/compaction, Link headers and the PyLD loader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pyld import jsonld
from pyld.jsonld import JsonLdError

from cityos.config import Settings, parse_mirrors
from cityos.hub.errors import BadRequestData, LdContextNotAvailable
from cityos.hub.ldcontext import (
    CONTEXT_REL,
    CORE_CONTEXT_ALIASES,
    CORE_CONTEXT_URL,
    DEFAULT_VOCAB,
    Context,
    ContextResolver,
    core_context,
    core_document,
    link_header_for,
    parse_link_header,
    pyld_loader,
)

# The project's shared reference data lies beside the repository (../shared), in CI too.
V17 = Path(__file__).resolve().parents[3] / "shared/ngsi-ld/ngsi-ld-core-context-v1.7.jsonld"
NGSI = "https://uri.etsi.org/ngsi-ld/"


def _store(docs: dict[str, Any]) -> ContextResolver:
    return ContextResolver(load=docs.get)


# -- the core context --------------------------------------------------------------------


@pytest.mark.skipif(
    not V17.exists() and os.environ.get("CI") != "true",
    reason=f"reference v1.7 core context not at {V17} (the project's ../shared)",
)
def test_core_v18_keeps_every_v17_term_and_iri() -> None:
    ref_doc = json.loads(V17.read_text())
    ref = ContextResolver().resolve(ref_doc, core=False)
    ours = core_context()
    assert len(ref.terms) > 100
    for term, ref_def in ref.terms.items():
        ours_def = ours.terms.get(term)
        assert ours_def is not None, f"v1.8 lacks v1.7 term {term}"
        assert ref_def is not None
        assert (ours_def.iri, ours_def.type, ours_def.container) == (
            ref_def.iri,
            ref_def.type,
            ref_def.container,
        ), term
    assert ours.vocab == ref.vocab == DEFAULT_VOCAB


def test_core_v18_adds_the_new_attribute_types() -> None:
    ctx = core_context()
    for term in ("JsonProperty", "ListProperty", "ListRelationship", "VocabProperty"):
        assert ctx.expand_term(term) == NGSI + term
    json_def = ctx.definition("json")
    assert json_def is not None and json_def.type == "@json"
    assert ctx.definition("valueList").container == ("@list",)
    assert ctx.definition("objectList").container == ("@list",)
    assert ctx.definition("observedAt").type == NGSI + "DateTime"
    assert ctx.definition("datasetId").type == "@id"


def test_core_terms_agree_with_pyld() -> None:
    """Every core term expands in our processor exactly as PyLD expands it."""
    loader = pyld_loader(ContextResolver())
    ctx = core_context()
    terms = [t for t in core_document()["@context"] if t not in ("id", "type", "@vocab")]
    doc = {"@context": CORE_CONTEXT_URL, **{t: "x" for t in terms}}
    expanded = jsonld.expand(doc, {"documentLoader": loader})[0]
    assert set(expanded) == {ctx.expand_term(t) for t in terms}


def test_core_only_expansion_and_compaction() -> None:
    ctx = core_context()
    assert ctx.expand_term("location") == NGSI + "location"
    assert ctx.expand_term("observationSpace") == NGSI + "observationSpace"
    assert ctx.expand_term("Property") == NGSI + "Property"
    assert ctx.expand_term("Point") == "https://purl.org/geojson/vocab#Point"
    assert ctx.expand_term("temperature") == DEFAULT_VOCAB + "temperature"
    assert ctx.expand_term("type") == "@type"
    assert ctx.expand_term("https://x.test/a") == "https://x.test/a"
    assert ctx.expand_term("urn:ngsi-ld:thing") == "urn:ngsi-ld:thing"
    assert ctx.compact_iri(DEFAULT_VOCAB + "temperature") == "temperature"
    assert ctx.compact_iri(NGSI + "location") == "location"
    assert ctx.compact_iri(NGSI + "hasValue") == "value"
    assert ctx.compact_iri(NGSI + "somethingNew") == "ngsi-ld:somethingNew"
    assert ctx.compact_iri("https://x.test/a") == "https://x.test/a"
    assert ctx.compact_iri("@type") == "type"


def test_core_aliases_resolve_to_the_builtin() -> None:
    resolver = ContextResolver()
    assert CORE_CONTEXT_URL in CORE_CONTEXT_ALIASES
    assert "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld" in CORE_CONTEXT_ALIASES
    for url in CORE_CONTEXT_ALIASES:
        assert dict(resolver.resolve(url).terms) == dict(core_context().terms)
        assert dict(resolver.resolve(url, core=False).terms) == dict(core_context().terms)


# -- merging rules -----------------------------------------------------------------------


def test_core_terms_cannot_be_overridden_and_later_contexts_win() -> None:
    ctx = ContextResolver().resolve(
        [
            {"ex": "http://ex.test/", "location": "ex:loc", "temp": "ex:t1", "name": "ex:n1"},
            {"temp": "http://other.test/t2"},
        ]
    )
    assert ctx.expand_term("location") == NGSI + "location"
    assert ctx.expand_term("temp") == "http://other.test/t2"
    assert ctx.expand_term("name") == "http://ex.test/n1"
    assert ctx.expand_term("undefinedThing") == DEFAULT_VOCAB + "undefinedThing"
    assert ctx.expand_term("ex:zz") == "http://ex.test/zz"
    assert ctx.compact_iri("http://ex.test/zz") == "ex:zz"
    assert ctx.compact_iri("http://ex.test/n1") == "name"


def test_user_vocab_applies_to_its_own_terms_only() -> None:
    """The core's @vocab, applied last, wins for undefined terms (NGSI-LD default context)."""
    ctx = ContextResolver().resolve({"@vocab": "http://v.test/", "speed": {"@type": "@id"}})
    assert ctx.expand_term("speed") == "http://v.test/speed"
    assert ctx.expand_term("other") == DEFAULT_VOCAB + "other"
    assert ContextResolver().resolve({"@vocab": "http://v.test/"}, core=False).expand_term(
        "other"
    ) == ("http://v.test/other")


def test_wrapped_document_and_null_reset() -> None:
    resolver = ContextResolver()
    ctx = resolver.resolve({"@context": [{"a": "http://a.test/a"}, None, {"b": "http://b.test/b"}]})
    assert ctx.expand_term("a") == DEFAULT_VOCAB + "a"
    assert ctx.expand_term("b") == "http://b.test/b"


def test_vocab_null_and_ignored_members() -> None:
    resolver = ContextResolver()
    ctx = resolver.resolve(
        [{"@vocab": "http://v.test/"}, {"@vocab": None, "@language": "en", "@protected": True}],
        core=False,
    )
    assert ctx.vocab is None
    with pytest.raises(BadRequestData, match="other"):
        ctx.expand_term("other")
    assert ctx.expand_term("http://x.test/y") == "http://x.test/y"


def test_shortest_term_wins_in_compaction() -> None:
    ctx = ContextResolver().resolve(
        {"zz": "http://t.test/x", "aaa": "http://t.test/x", "yy": "http://t.test/x"}
    )
    assert ctx.compact_iri("http://t.test/x") == "yy"


def test_null_mapped_term_is_rejected_on_expansion() -> None:
    ctx = ContextResolver().resolve({"gone": None})
    with pytest.raises(BadRequestData, match="gone"):
        ctx.expand_term("gone")
    assert ctx.compact_iri(DEFAULT_VOCAB + "gone") != "gone"


def test_resolve_is_cached_and_invalidated() -> None:
    docs = {"http://c.test/1": {"@context": {"a": "http://a.test/1"}}}
    resolver = _store(docs)
    first = resolver.resolve("http://c.test/1")
    assert resolver.resolve("http://c.test/1") is first
    assert resolver.resolve({"x": "http://x.test/"}) is resolver.resolve({"x": "http://x.test/"})
    docs["http://c.test/1"] = {"@context": {"a": "http://a.test/2"}}
    assert resolver.resolve("http://c.test/1").expand_term("a") == "http://a.test/1"
    resolver.invalidate("http://c.test/1")
    assert resolver.resolve("http://c.test/1").expand_term("a") == "http://a.test/2"


# -- remote contexts ---------------------------------------------------------------------


def test_nested_stored_contexts_resolve_recursively() -> None:
    docs = {
        "http://c.test/top": {"@context": ["http://c.test/a", "http://c.test/b", CORE_CONTEXT_URL]},
        "http://c.test/a": {"@context": {"sdm": "https://sdm.test/", "Building": "sdm:Building"}},
        "http://c.test/b": {"@context": ["http://c.test/a", {"height": "sdm:height"}]},
    }
    ctx = _store(docs).resolve("http://c.test/top")
    assert ctx.expand_term("Building") == "https://sdm.test/Building"
    assert ctx.expand_term("height") == "https://sdm.test/height"
    assert ctx.compact_iri("https://sdm.test/height") == "height"


def test_import_merges_the_imported_context() -> None:
    docs = {"http://c.test/base": {"@context": {"a": "http://a.test/a", "b": "http://a.test/b"}}}
    ctx = _store(docs).resolve({"@import": "http://c.test/base", "b": "http://b.test/b"})
    assert ctx.expand_term("a") == "http://a.test/a"
    assert ctx.expand_term("b") == "http://b.test/b"


def test_depth_limit_and_cycles_are_bad_request() -> None:
    docs = {f"http://c.test/{i}": {"@context": f"http://c.test/{i + 1}"} for i in range(20)}
    docs["http://c.test/20"] = {"@context": {}}
    with pytest.raises(BadRequestData, match="deeper"):
        ContextResolver(load=docs.get, max_depth=8).resolve("http://c.test/0")
    assert ContextResolver(load=docs.get, max_depth=30).resolve("http://c.test/0")
    cyc = {
        "http://c.test/x": {"@context": "http://c.test/y"},
        "http://c.test/y": {"@context": "http://c.test/x"},
    }
    with pytest.raises(BadRequestData, match="c.test"):
        _store(cyc).resolve("http://c.test/x")


def test_unknown_url_is_not_available() -> None:
    with pytest.raises(LdContextNotAvailable) as info:
        ContextResolver().resolve(["https://nowhere.test/ctx.jsonld"])
    assert "https://nowhere.test/ctx.jsonld" in info.value.detail
    assert info.value.status == 503


class _Server:
    """An in-process HTTP server for httpx (no network): path -> (status, headers, body)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.hits: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hits.append(str(request.url))
        status, headers, body = self.routes.get(str(request.url), (404, {}, b""))
        return httpx.Response(status, headers=headers, content=body)


def _fetching(server: _Server, **kw: Any) -> tuple[ContextResolver, dict[str, Any]]:
    saved: dict[str, Any] = {}
    resolver = ContextResolver(
        load=saved.get,
        save=saved.__setitem__,
        transport=httpx.MockTransport(server),
        allow_hosts={"ctx.test", "*.models.test"},
        **kw,
    )
    return resolver, saved


def test_allowlisted_fetch_is_saved_and_not_refetched() -> None:
    body = json.dumps({"@context": {"speed": "http://s.test/speed"}}).encode()
    server = _Server(
        {"https://ctx.test/c.jsonld": (200, {"content-type": "application/ld+json"}, body)}
    )
    resolver, saved = _fetching(server)
    ctx = resolver.resolve("https://ctx.test/c.jsonld")
    assert ctx.expand_term("speed") == "http://s.test/speed"
    assert saved["https://ctx.test/c.jsonld"] == {"@context": {"speed": "http://s.test/speed"}}
    resolver.invalidate()
    resolver.resolve("https://ctx.test/c.jsonld")
    assert server.hits == ["https://ctx.test/c.jsonld"]


def test_wildcard_host_and_redirect_checks() -> None:
    body = json.dumps({"@context": {"a": "http://a.test/a"}}).encode()
    server = _Server(
        {
            "https://x.models.test/c": (302, {"location": "https://ctx.test/c2"}, b""),
            "https://ctx.test/c2": (200, {}, body),
            "https://ctx.test/evil": (302, {"location": "https://evil.test/c"}, b""),
        }
    )
    resolver, _ = _fetching(server)
    assert resolver.resolve("https://x.models.test/c").expand_term("a") == "http://a.test/a"
    with pytest.raises(LdContextNotAvailable, match="evil.test"):
        resolver.resolve("https://ctx.test/evil")
    assert "https://evil.test/c" not in server.hits


def test_fetch_refusals_and_failures() -> None:
    big = json.dumps({"@context": {f"t{i}": f"http://t.test/{i}" for i in range(200)}}).encode()
    server = _Server(
        {
            "https://ctx.test/big": (200, {}, big),
            "https://ctx.test/notjson": (200, {}, b"<html>"),
            "https://ctx.test/nocontext": (200, {}, b'{"a": 1}'),
        }
    )
    resolver, saved = _fetching(server, max_bytes=1000)
    with pytest.raises(LdContextNotAvailable, match="1000-byte"):
        resolver.resolve("https://ctx.test/big")
    with pytest.raises(LdContextNotAvailable, match="HTTP 404"):
        resolver.resolve("https://ctx.test/missing")
    with pytest.raises(BadRequestData, match="not JSON"):
        resolver.resolve("https://ctx.test/notjson")
    with pytest.raises(BadRequestData, match="nocontext"):
        resolver.resolve("https://ctx.test/nocontext")
    with pytest.raises(LdContextNotAvailable, match="allowlist"):
        resolver.resolve("https://other.test/c")
    assert "https://other.test/c" not in server.hits
    assert saved == {}


def test_fetch_timeout_is_not_available() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    resolver = ContextResolver(transport=httpx.MockTransport(slow), allow_hosts={"ctx.test"})
    with pytest.raises(LdContextNotAvailable, match="ctx.test"):
        resolver.resolve("https://ctx.test/slow")


@pytest.mark.parametrize(
    "value, match",
    [
        (42, "int"),
        ({"a": 5}, "'a'"),
        ({"a": "b", "b": "a"}, "cyclic"),
        ({"@vocab": 3}, "@vocab"),
        ({"a": {"@id": "http://a.test/", "@container": "@bogus"}}, "@container"),
        ({"a": {"@id": "http://a.test/", "@foo": 1}}, "unknown"),
        ({"@id": "http://a.test/"}, "keyword"),
        ({"ex:a": "http://elsewhere.test/a", "ex": "http://ex.test/"}, "form of an IRI"),
        ("relative/ctx.jsonld", "absolute"),
    ],
)
def test_malformed_contexts_are_bad_request(value: Any, match: str) -> None:
    with pytest.raises(BadRequestData, match=match):
        ContextResolver().resolve(value)


# -- Link header -------------------------------------------------------------------------


def test_link_header_round_trip_and_variants() -> None:
    url = "https://ctx.test/a,b.jsonld"
    assert parse_link_header(link_header_for(url)) == url
    assert parse_link_header(f'<{url}>; rel="{CONTEXT_REL}"') == url
    assert parse_link_header(f"<{url}>;rel={CONTEXT_REL};type=application/ld+json") == url
    other = '<https://x.test/n>; rel="next"'
    assert parse_link_header(f'{other}, <{url}>; rel="alternate {CONTEXT_REL}"') == url
    assert parse_link_header(other) is None
    assert parse_link_header("") is None
    with pytest.raises(BadRequestData, match="more than one"):
        parse_link_header(f"{link_header_for(url)}, {link_header_for('https://ctx.test/z')}")
    with pytest.raises(BadRequestData, match="absolute"):
        parse_link_header(link_header_for("ctx.jsonld"))


# -- PyLD loader -------------------------------------------------------------------------


def test_pyld_loader_is_local_only() -> None:
    server = _Server({})
    docs = {"https://ctx.test/c": {"@context": {"a": "http://a.test/a"}}}
    resolver = ContextResolver(
        load=docs.get, transport=httpx.MockTransport(server), allow_hosts={"ctx.test"}
    )
    loader = pyld_loader(resolver)
    assert loader(CORE_CONTEXT_URL)["document"] == core_document()
    out = jsonld.expand({"@context": "https://ctx.test/c", "a": "x"}, {"documentLoader": loader})
    assert set(out[0]) == {"http://a.test/a"}
    with pytest.raises(JsonLdError):
        jsonld.expand({"@context": "https://ctx.test/other", "a": 1}, {"documentLoader": loader})
    assert server.hits == []


# -- property tests against PyLD ---------------------------------------------------------

PREFIXES = {
    "ex": "http://example.org/",
    "schema": "https://schema.org/",
    "sdm": "https://smartdatamodels.org/dataModel.Weather/",
    "u": "urn:x:",
}
LOCALS = ["a", "b", "Temp", "x1"]
TERMS = ["a", "b", "temp", "name", "location", "observedAt", "Building", "ex", "schema", "u"]

_abs_iri = st.builds(
    lambda p, s: p + s, st.sampled_from(list(PREFIXES.values())), st.sampled_from(LOCALS)
)
_compact = st.builds(
    lambda p, s: f"{p}:{s}", st.sampled_from(list(PREFIXES)), st.sampled_from(LOCALS)
)
_prefix_iri = st.sampled_from(list(PREFIXES.values()) + ["http://other.test/ns#"])
_id_string = st.one_of(_abs_iri, _compact, st.sampled_from(TERMS), _prefix_iri)


def _term_defs(plain: bool) -> st.SearchStrategy[Any]:
    if plain:
        return st.one_of(_id_string, st.fixed_dictionaries({"@id": _id_string}))
    expanded = st.fixed_dictionaries(
        {"@id": st.one_of(_id_string, st.none())},
        optional={
            "@type": st.sampled_from(
                ["@id", "@vocab", "ex:Type", "http://www.w3.org/2001/XMLSchema#dateTime"]
            ),
            "@container": st.sampled_from(["@list", "@set"]),
            "@prefix": st.booleans(),
        },
    )
    return st.one_of(_id_string, _id_string, st.none(), expanded)


def _local_contexts(plain: bool) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(TERMS + ["ex:a", "schema:b", "ex:new"])
    terms = st.dictionaries(names, _term_defs(plain), max_size=5)
    prefixes = st.dictionaries(st.sampled_from(list(PREFIXES)), _prefix_iri, max_size=3)
    vocab = st.one_of(
        st.just({}),
        st.fixed_dictionaries({"@vocab": st.one_of(_prefix_iri, st.just("ex:"))}),
    )
    return st.builds(lambda v, p, t: {**v, **p, **t}, vocab, prefixes, terms)


_LOCAL = {False: _local_contexts(False), True: _local_contexts(True)}


@st.composite
def _contexts(draw: st.DrawFn, plain: bool = False) -> tuple[list[Any], dict[str, Any]]:
    """A list of contexts (inline or stored URLs, possibly nested) and the stored documents."""
    docs: dict[str, Any] = {}
    local = _LOCAL[plain]
    for i in range(draw(st.integers(0, 2))):
        inner: list[Any] = [draw(local)]
        if docs and draw(st.booleans()):
            inner.insert(0, f"http://ctx.test/{draw(st.integers(0, i - 1))}.jsonld")
        docs[f"http://ctx.test/{i}.jsonld"] = {"@context": inner if len(inner) > 1 else inner[0]}
    entries: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        if docs and draw(st.booleans()):
            entries.append(f"http://ctx.test/{draw(st.integers(0, len(docs) - 1))}.jsonld")
        else:
            entries.append(draw(local))
    return entries, docs


_terms_to_expand = st.one_of(
    st.sampled_from(TERMS + ["other", "Property", "unitCode", "createdAt"]),
    _compact,
    _abs_iri,
    st.just("zz:unknown"),
)
_iris_to_compact = st.one_of(
    _abs_iri,
    st.sampled_from(list(PREFIXES.values())),
    st.builds(lambda s: DEFAULT_VOCAB + s, st.sampled_from(LOCALS + ["name", "ex"])),
    st.sampled_from([NGSI + "location", NGSI + "brandNew", "http://other.test/ns#a", "urn:x:a"]),
)

_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pyld(op: Any, doc: Any, *args: Any, resolver: ContextResolver) -> Any:
    try:
        return op(doc, *args, {"documentLoader": pyld_loader(resolver)})
    except (TypeError, KeyError, AttributeError):
        # PyLD itself crashes on some odd contexts (e.g. a prefix mapped to null that a
        # compact-IRI term uses): no reference answer to compare with, so skip the example.
        reject()


def _resolve_both(
    resolver: ContextResolver, contexts: list[Any], core: bool
) -> tuple[Context | None, bool]:
    """Our Context (None if we reject it) and whether PyLD rejects the same context."""
    full = [*contexts, CORE_CONTEXT_URL] if core else contexts
    try:
        _pyld(jsonld.expand, {"@context": full, "@id": "urn:x:probe"}, resolver=resolver)
        pyld_ok = True
    except JsonLdError:
        pyld_ok = False
    try:
        ours: Context | None = resolver.resolve(contexts, core=core)
    except BadRequestData:
        ours = None
    assert (ours is not None) == pyld_ok, "validity of the context differs from PyLD"
    return ours, pyld_ok


@_SETTINGS
@given(data=_contexts(), term=_terms_to_expand, core=st.booleans())
def test_expand_term_agrees_with_pyld(
    data: tuple[list[Any], dict[str, Any]], term: str, core: bool
) -> None:
    contexts, docs = data
    resolver = _store(docs)
    ctx, ok = _resolve_both(resolver, contexts, core)
    if ctx is None:
        return
    full = [*contexts, CORE_CONTEXT_URL] if core else contexts
    out = _pyld(jsonld.expand, {"@context": full, term: "x"}, resolver=resolver)
    keys = set(out[0]) if out else set()
    try:
        iri = ctx.expand_term(term)
    except BadRequestData:
        assert keys == set()
        return
    assert keys == {iri}
    typed = _pyld(
        jsonld.expand, {"@context": full, "@id": "urn:x:s", "@type": term}, resolver=resolver
    )
    assert typed[0]["@type"] == [iri]
    if core:
        # the core overlay gives the same terms as processing the core document in place
        inline = resolver.resolve([*contexts, core_document()["@context"]], core=False)
        assert dict(inline.terms) == dict(ctx.terms)
        assert inline.vocab == ctx.vocab


@_SETTINGS
@given(data=_contexts(plain=True), iri=_iris_to_compact)
def test_compact_iri_round_trips_and_agrees_with_pyld(
    data: tuple[list[Any], dict[str, Any]], iri: str
) -> None:
    contexts, docs = data
    resolver = _store(docs)
    ctx, _ = _resolve_both(resolver, contexts, True)
    if ctx is None:
        return
    ours = ctx.compact_iri(iri)
    try:
        out = _pyld(
            jsonld.compact,
            {iri: "x"},
            {"@context": [*contexts, CORE_CONTEXT_URL]},
            resolver=resolver,
        )
    except JsonLdError as exc:
        assert "confused" in str(exc).lower() or exc.code == "IRI confused with prefix"
        assert ours == iri
        return
    assert ctx.expand_term(ours) == iri
    plain = all(
        d.type is None and not d.container
        for d in ctx.terms.values()
        if d is not None and d.iri == iri
    )
    if plain:
        assert set(out) - {"@context"} == {ours}


@_SETTINGS
@given(data=_contexts(), iri=_iris_to_compact)
def test_compact_iri_round_trips_with_typed_terms(
    data: tuple[list[Any], dict[str, Any]], iri: str
) -> None:
    contexts, docs = data
    try:
        ctx = _store(docs).resolve(contexts)
    except BadRequestData:
        return
    ours = ctx.compact_iri(iri)
    if ours != iri:
        assert ctx.expand_term(ours) == iri
    assert ctx.compact_iri(iri) is ours  # memoised


def test_a_mirrored_context_is_fetched_from_the_mirror_and_kept_by_its_own_url() -> None:
    """context_mirrors: a hub without the Internet reads a remote @context from a local
    copy; only the mirror's host is asked (and must be allowlisted), the original never."""
    body = json.dumps({"@context": {"Shop": "https://sdm.test/Shop"}}).encode()
    server = _Server({"https://ctx.test/sdm/v2/context.jsonld": (200, {}, body)})
    resolver, saved = _fetching(
        server,
        mirrors=parse_mirrors(["https://smartdatamodels.test/=https://ctx.test/sdm/"]),
    )
    url = "https://smartdatamodels.test/v2/context.jsonld"
    assert resolver.resolve(url).expand_term("Shop") == "https://sdm.test/Shop"
    assert server.hits == ["https://ctx.test/sdm/v2/context.jsonld"]
    assert saved == {url: {"@context": {"Shop": "https://sdm.test/Shop"}}}
    # not under the prefix: the original host, which is not allowlisted, is not asked
    with pytest.raises(LdContextNotAvailable, match="allowlist"):
        resolver.resolve("https://elsewhere.test/c.jsonld")
    assert server.hits == ["https://ctx.test/sdm/v2/context.jsonld"]


def test_the_longest_mirror_prefix_wins_and_a_mirror_must_be_allowlisted() -> None:
    resolver = ContextResolver(
        allow_hosts={"ctx.test"},
        mirrors=parse_mirrors(
            ["https://a.test/=https://ctx.test/a/", "https://a.test/deep/=https://ctx.test/d/"]
        ),
    )
    assert resolver.fetch_url("https://a.test/deep/x") == "https://ctx.test/d/x"
    assert resolver.fetch_url("https://a.test/x") == "https://ctx.test/a/x"
    assert resolver.fetch_url("https://b.test/x") == "https://b.test/x"
    unlisted = ContextResolver(mirrors=parse_mirrors(["https://a.test/=https://lan.test/"]))
    with pytest.raises(LdContextNotAvailable, match="allowlist"):
        unlisted.resolve("https://a.test/c.jsonld")


@pytest.mark.parametrize(
    "entry", ["https://a.test/", "a=b", "https://a.test/=ftp://b.test/", "=https://b.test/"]
)
def test_a_malformed_mirror_is_one_clear_error(entry: str) -> None:
    with pytest.raises(ValueError, match="context_mirrors"):
        parse_mirrors([entry])
    with pytest.raises(ValueError, match="context_mirrors"):  # found as the settings load
        Settings.load(env={"CITYOS_CONTEXT_MIRRORS": entry})

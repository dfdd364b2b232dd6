"""JSON-LD @context handling (interface stub — being implemented)."""

from __future__ import annotations


class Context:
    """A resolved @context: maps terms to IRIs and back. Immutable and cached."""

    def expand_term(self, term: str) -> str:
        raise NotImplementedError

    def compact_iri(self, iri: str) -> str:
        raise NotImplementedError

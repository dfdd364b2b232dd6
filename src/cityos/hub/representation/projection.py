"""``pick``/``omit`` expressions (GS CIM 009 v1.8 clause 4.21, 6.3.x): parsed into a tree.

An expression is a comma-separated list of members; a member that is a Relationship may
carry a nested list in braces that selects the members of the entity it links to (used with
``join``): ``id,locatedAt{id,name,isInCountry{description}}``. Anything else (an empty
member, ``;``, an unclosed or doubled brace, ``{}``) is malformed: BadRequestData, so the
caller's mistake is reported rather than silently matching nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cityos.hub.errors import BadRequestData

# Characters an attribute name may not hold (clause 4.6.2), plus the expression's own syntax.
_FORBIDDEN = set("<>\"'=;()[]&?\\ \t\r\n")


@dataclass(frozen=True)
class Projection:
    """Members to pick or omit at one level; ``nested`` holds the selection for the entity a
    Relationship member links to. Iterating gives the member names (terms as written)."""

    members: tuple[str, ...]
    nested: dict[str, Projection] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def below(self, term: str) -> Projection | None:
        """The selection for the entity linked through ``term`` (None: no selection)."""
        return self.nested.get(term)


def parse_projection(raw: str, what: str = "pick") -> Projection:
    """Parse one ``pick``/``omit`` value; BadRequestData names what is wrong and where."""
    parser = _Parser(raw, what)
    proj = parser.list()
    if parser.pos != len(raw):
        parser.fail("unexpected '}'")
    return proj


class _Parser:
    def __init__(self, text: str, what: str):
        self.text = text
        self.what = what
        self.pos = 0

    def fail(self, why: str) -> None:
        raise BadRequestData(
            f"parameter {self.what}: {why} at position {self.pos} of {self.text!r}"
        )

    def list(self) -> Projection:
        members: list[str] = []
        nested: dict[str, Projection] = {}
        while True:
            name = self.name()
            if name in members:
                self.fail(f"{name!r} given twice")
            members.append(name)
            if self.peek() == "{":
                self.pos += 1
                nested[name] = self.list()
                if self.peek() != "}":
                    self.fail("unclosed '{'")
                self.pos += 1
            if self.peek() != ",":
                return Projection(tuple(members), nested)
            self.pos += 1

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",{}":
            if self.text[self.pos] in _FORBIDDEN or ord(self.text[self.pos]) < 32:
                self.fail(f"character {self.text[self.pos]!r} not allowed")
            self.pos += 1
        if self.pos == start:
            self.fail("an attribute name is missing")
        return self.text[start : self.pos]

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

"""The plan tool's package data: the 26 ASCN pilot cities, the needs survey, the cost
assumptions and the example answers, read from ``data/`` so that they ship with CityOS and
need no download."""

from __future__ import annotations

import difflib
import json
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from .plan_errors import UnknownCity


def read_json(name: str) -> Any:
    """A JSON file of ``data/`` (``examples/phnom-penh.json``)."""
    node = resources.files(__package__).joinpath("data")
    for part in name.split("/"):
        node = node.joinpath(part)
    return json.loads(node.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class City:
    """One ASCN pilot city; every figure approximate, with its year and source."""

    name: str
    country: str
    iso2: str
    scope: str
    population: int
    population_year: int
    population_source: str
    area_km2: float
    area_source: str
    lat: float
    lon: float
    uncertainty: str
    aliases: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        """The file-name form of the name (``ho-chi-minh-city``)."""
        return "-".join(_fold(self.name).split())

    def as_dict(self) -> dict[str, Any]:
        """The city as written in the plan's JSON."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "aliases"}
        out["approximate"] = True
        return out


@cache
def cities() -> tuple[City, ...]:
    """The 26 pilot cities in the order of ``ascn_cities.json`` (by country)."""
    doc = read_json("ascn_cities.json")
    return tuple(City(**{**c, "aliases": tuple(c.get("aliases", ()))}) for c in doc["cities"])


def cities_note() -> str:
    """What the city figures are (approximate, and why)."""
    return str(read_json("ascn_cities.json")["note"])


def _fold(text: str) -> str:
    """Lower case without accents or punctuation, so ``Đà Nẵng`` finds ``Da Nang``."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalnum() else " " for c in plain.lower()).split())


def find_city(name: str) -> City:
    """The city called ``name`` (or one of its aliases); otherwise an error with the
    closest names, so a typo is one step from the fix."""
    wanted = _fold(name)
    names: dict[str, City] = {}
    for city in cities():
        for label in (city.name, *city.aliases):
            names[_fold(label)] = city
    if wanted in names:
        return names[wanted]
    close = difflib.get_close_matches(wanted, list(names), n=5, cutoff=0.5)
    close += [k for k in names if wanted and (wanted in k or k in wanted)]
    found = list(dict.fromkeys(names[k].name for k in close))[:3]
    raise UnknownCity(name, found)


@dataclass(frozen=True)
class Question:
    """One survey question: its type, what it tells (need weights or readiness)."""

    id: str
    section: str
    type: str
    text: str
    options: tuple[dict[str, Any], ...] = ()
    need: dict[str, float] = field(default_factory=dict)
    readiness: str | None = None
    invert: bool = False
    optional: bool = False
    boost: float = 0.0
    low: str = ""
    high: str = ""

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed values of a choice question."""
        return tuple(str(o["value"]) for o in self.options)

    def option(self, value: str) -> dict[str, Any]:
        """The option of a choice question whose value is ``value``."""
        return next(o for o in self.options if o["value"] == value)


@cache
def survey() -> tuple[Question, ...]:
    """The questions of ``survey.json`` in their order."""
    doc = read_json("survey.json")
    return tuple(
        Question(**{**q, "options": tuple(q.get("options", ()))}) for q in doc["questions"]
    )


def survey_doc() -> dict[str, Any]:
    """The whole survey file (title, about, questions) for printing and the docs."""
    return dict(read_json("survey.json"))


EXAMPLES = ("phnom-penh", "ho-chi-minh-city", "bangkok", "luang-prabang")


def example_answers(slug: str) -> dict[str, Any]:
    """The shipped example answers of one city (``phnom-penh``): illustrations, never the
    city's own position."""
    return dict(read_json(f"examples/{slug}.json"))

"""Picking one language out of a LanguageProperty for the ``lang`` query parameter.

``lang`` is a language tag or a list in the ``Accept-Language`` style (``km,en;q=0.8,*``).
The best match wins: an exact tag, then a more specific tag of the same language
(``en`` matches ``en-GB``), ``*`` matches anything; with no match the ``@none`` entry, else
the first entry, so a client always gets a value back.
"""

from __future__ import annotations

from typing import Any


def parse_preferences(lang: str) -> list[str]:
    """``"km,en;q=0.8,*;q=0.1"`` -> ``["km", "en", "*"]`` (highest quality first)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(lang.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(language_map: dict[str, Any], lang: str) -> tuple[str, Any]:
    """The (tag, text) of ``language_map`` that best fits ``lang``."""
    by_lower = {tag.lower(): tag for tag in language_map}
    for wanted in parse_preferences(lang):
        wanted_lower = wanted.lower()
        if wanted_lower == "*":
            tag = next(iter(language_map))
            return tag, language_map[tag]
        if wanted_lower in by_lower:
            tag = by_lower[wanted_lower]
            return tag, language_map[tag]
        for lower, tag in by_lower.items():
            if lower.startswith(wanted_lower + "-"):
                return tag, language_map[tag]
    if "@none" in language_map:
        return "@none", language_map["@none"]
    tag = next(iter(language_map))
    return tag, language_map[tag]

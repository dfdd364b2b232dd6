"""A city's answers to the needs survey: read from TOML or JSON and checked question by
question, so a wrong value is refused with the field it is in (``answers.flooding: expected
1–5, got 9``) rather than turning silently into a wrong plan."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plan_data import Question, survey
from .plan_errors import AnswersError

TOP_LEVEL = ("city", "example", "note", "respondent", "date", "answers")


@dataclass(frozen=True)
class Answers:
    """Checked answers: ``values`` maps a question id to 1–5, True/False or an option."""

    values: dict[str, Any]
    city: str | None = None
    example: bool = False
    note: str = ""
    respondent: str = ""
    source: str = ""
    unanswered: tuple[str, ...] = field(default=())

    def get(self, qid: str, default: Any = None) -> Any:
        """The answer to ``qid``, or ``default`` when an optional question was skipped."""
        return self.values.get(qid, default)


def load_answers(path: str | Path) -> Answers:
    """Read and check an answers file (``.toml``, ``.json``; another suffix is tried as
    JSON, then TOML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AnswersError("file", f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_answers(_decode(text, path.suffix.lower(), str(path)), source=str(path))


def _decode(text: str, suffix: str, name: str) -> Any:
    """The document in ``text``: TOML or JSON by suffix; a syntax error names the line."""
    if suffix == ".toml":
        return _toml(text, name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if suffix == ".json":
            raise AnswersError("file", f"{name} is not valid JSON: {exc}") from exc
        return _toml(text, name)


def _toml(text: str, name: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnswersError("file", f"{name} is not valid TOML: {exc}") from exc


def parse_answers(doc: Any, source: str = "") -> Answers:
    """Check a decoded answers document: its top-level fields, then every question."""
    if not isinstance(doc, dict):
        raise AnswersError("file", f"expected a table/object at the top, got {_kind(doc)}")
    _check_top_level(doc)
    given = doc.get("answers")
    if not isinstance(given, dict):
        raise AnswersError("answers", f"expected a table of answers, got {_kind(given)}")
    values, skipped = _check_answers(given)
    return Answers(
        values=values,
        city=_text(doc, "city") or None,
        example=_flag(doc, "example"),
        note=_text(doc, "note"),
        respondent=_text(doc, "respondent"),
        source=source,
        unanswered=skipped,
    )


def _check_top_level(doc: dict[str, Any]) -> None:
    for key in doc:
        if key not in TOP_LEVEL:
            raise AnswersError(str(key), f"unknown field (expected one of {', '.join(TOP_LEVEL)})")


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise AnswersError(key, f"expected text, got {_kind(value)}")
    return value


def _flag(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise AnswersError(key, f"expected true or false, got {value!r}")
    return value


def _check_answers(given: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Each known question checked; an unknown id or a missing required one refused."""
    questions = {q.id: q for q in survey()}
    for qid in given:
        if qid not in questions:
            raise AnswersError(f"answers.{qid}", _unknown_hint(str(qid), list(questions)))
    values: dict[str, Any] = {}
    skipped: list[str] = []
    for q in survey():
        if q.id not in given:
            if not q.optional:
                raise AnswersError(f"answers.{q.id}", f"missing ({expected(q)}): {q.text}")
            skipped.append(q.id)
            continue
        values[q.id] = check_value(q, given[q.id])
    return values, tuple(skipped)


def _unknown_hint(qid: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(qid, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see `cityos plan survey`)"
    return f"unknown question{hint}"


def expected(q: Question) -> str:
    """What an answer to ``q`` must be, in the words of the error messages."""
    if q.type == "scale":
        return "expected 1–5"
    if q.type == "yesno":
        return "expected yes or no (true/false)"
    return f"expected one of {', '.join(q.values)}"


def check_value(q: Question, value: Any) -> Any:
    """The answer normalised (1–5, True/False or the option), or an error naming it."""
    field_name = f"answers.{q.id}"
    if q.type == "scale":
        return _scale(field_name, q, value)
    if q.type == "yesno":
        return _yesno(field_name, q, value)
    if q.type == "choice":
        if isinstance(value, str) and value in q.values:
            return value
        raise AnswersError(field_name, f"{expected(q)}, got {value!r}")
    raise AnswersError(field_name, f"the survey has an unknown question type {q.type!r}")


def _scale(field_name: str, q: Question, value: Any) -> int:
    number = value
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 5:
        raise AnswersError(field_name, f"{expected(q)}, got {value!r}")
    return number


def _yesno(field_name: str, q: Question, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower() == "yes"
    raise AnswersError(field_name, f"{expected(q)}, got {value!r}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def template(city: str = "", fmt: str = "toml") -> str:
    """A blank answers file (every question as a comment above a middle answer) to fill in."""
    if fmt == "json":
        values = {q.id: _middle(q) for q in survey()}
        doc = {"city": city, "example": False, "note": "", "answers": values}
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    lines = [
        "# CityOS needs survey: replace each answer with the city's own, then run",
        "# cityos plan --city NAME --answers THIS_FILE --format html --out plan.html",
        f'city = "{city}"',
        "example = false  # true: made-up answers for a demonstration, not the city's position",
        'note = ""',
        "",
        "[answers]",
    ]
    for q in survey():
        lines += [
            f"# [{q.section}] {q.text} ({expected(q)}{_ends(q)})",
            f"{q.id} = {_toml_value(_middle(q))}",
        ]
    return "\n".join(lines) + "\n"


def _ends(q: Question) -> str:
    return f"; 1 = {q.low}, 5 = {q.high}" if q.type == "scale" and q.low else ""


def _middle(q: Question) -> Any:
    if q.type == "scale":
        return 3
    if q.type == "yesno":
        return False
    return q.values[-1] if q.optional else q.values[0]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)

"""The errors of the basic-plan tool, each a message that says what to fix."""

from __future__ import annotations


class PlanError(ValueError):
    """Anything the plan tool refuses; the message is meant for the person who ran it."""


class AnswersError(PlanError):
    """A survey answers file that cannot be used, naming the field (``answers.flooding``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownCity(PlanError):
    """A city that is not one of the 26 ASCN pilot cities, with the closest names."""

    def __init__(self, name: str, matches: list[str]) -> None:
        hint = f"did you mean {', '.join(matches)}?" if matches else "see `cityos plan cities`"
        super().__init__(f"unknown city {name!r}: {hint}")
        self.name = name
        self.matches = matches

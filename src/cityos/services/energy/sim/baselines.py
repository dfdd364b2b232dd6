"""The two reference controllers of the CityLearn 2022 challenge: doing nothing (the score's
denominator, so it scores 1.0) and the starter kit's rule (``rbc_agent.py``, the same as
CityLearn 1.3.6's ``BasicRBC``): charge 9.1 % of capacity an hour at night, give back 8 % an
hour from 09:00 to 21:00. Every better controller has to beat the rule."""

from __future__ import annotations

from ..control import Observation, SiteInfo


class NoControl:
    """Batteries idle: every action 0."""

    name = "none"

    def reset(self, site: SiteInfo) -> None:
        self.n = len(site.buildings)

    def act(self, obs: Observation) -> list[float]:
        return [0.0] * self.n


class RuleBased:
    """By the hour of the observation (CityLearn's 1–24): discharge in the day, charge at
    night; the same action for every building."""

    name = "rule-based"
    CHARGE = 0.091
    DISCHARGE = -0.08

    def reset(self, site: SiteInfo) -> None:
        self.n = len(site.buildings)

    def act(self, obs: Observation) -> list[float]:
        if 9 <= obs.hour <= 21:
            action = self.DISCHARGE
        elif 1 <= obs.hour <= 8 or 22 <= obs.hour <= 24:
            action = self.CHARGE
        else:
            action = 0.0
        return [action] * self.n


BASELINES = {"none": NoControl, "rule-based": RuleBased}

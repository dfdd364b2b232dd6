"""The noise: OpenDP measurements on a vector of integer counts.

Two mechanisms, both OpenDP's (so the privacy loss is computed by its audited ``map``, not
by us):

- ``laplace``: the discrete Laplace (geometric) mechanism, pure ε-DP; noise scale
  ``b = sensitivity / ε`` (standard deviation ≈ ``b·√2``).
- ``gaussian``: the discrete Gaussian, ρ-zCDP converted to (ε, δ)-DP; its scale is the
  smallest OpenDP's binary search finds for the asked (ε, δ).

``sensitivity`` is the most one person can change the whole vector (L1 for Laplace; for the
Gaussian it is used as the L2 bound, which is safe: a person's k records change the vector
by at most k in L2 as in L1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRelease

MECHANISMS = ("laplace", "gaussian")
_SLACK = 1e-9  # OpenDP rounds its map conservatively: a hair above the asked ε is ours


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@dataclass(frozen=True)
class Noise:
    """A measurement ready to run, and the privacy it costs."""

    mechanism: str
    sensitivity: int
    scale: float
    epsilon: float
    delta: float
    measurement: Any

    def __call__(self, counts: Sequence[int]) -> list[int]:
        return list(self.measurement([int(c) for c in counts]))

    @property
    def std(self) -> float:
        """The noise's standard deviation (both are ≈ continuous at these scales)."""
        return self.scale * math.sqrt(2) if self.mechanism == "laplace" else self.scale


def check_budget_request(epsilon: float, delta: float, mechanism: str) -> None:
    """Refuse what no measurement can honour; :class:`InvalidRelease` saying why."""
    if mechanism not in MECHANISMS:
        raise InvalidRelease(f"mechanism {mechanism!r}: use {' or '.join(MECHANISMS)}")
    if not isinstance(epsilon, int | float) or not math.isfinite(epsilon) or epsilon <= 0:
        raise InvalidRelease(
            f"epsilon must be a number above 0 (got {epsilon!r}); nothing released"
        )
    if not isinstance(delta, int | float) or not math.isfinite(delta) or not 0 <= delta < 1:
        raise InvalidRelease(f"delta must be in [0, 1) (got {delta!r}); nothing released")
    if mechanism == "laplace" and delta != 0:
        raise InvalidRelease("the Laplace mechanism is pure ε-DP: give delta 0, or use gaussian")
    if mechanism == "gaussian" and delta == 0:
        raise InvalidRelease("the Gaussian mechanism needs delta > 0 (e.g. 1e-6)")


def noise(mechanism: str, sensitivity: int, epsilon: float, delta: float = 0.0) -> Noise:
    """The measurement for counts of this ``sensitivity`` at (``epsilon``, ``delta``)."""
    check_budget_request(epsilon, delta, mechanism)
    if not isinstance(sensitivity, int) or sensitivity < 1:
        raise InvalidRelease(f"sensitivity must be a whole number >= 1 (got {sensitivity!r})")
    dp = _dp()
    domain = dp.vector_domain(dp.atom_domain(T=int))
    if mechanism == "laplace":
        scale = sensitivity / epsilon
        meas = dp.m.make_laplace(domain, dp.l1_distance(T=int), scale=scale)
        used_eps, used_delta = float(meas.map(sensitivity)), 0.0
    else:

        def build(scale: float) -> Any:
            gauss = dp.m.make_gaussian(domain, dp.l2_distance(T=int), scale=scale)
            return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gauss), delta)

        scale = dp.binary_search_param(build, d_in=sensitivity, d_out=(epsilon, delta))
        meas = build(scale)
        used_eps, used_delta = (float(x) for x in meas.map(sensitivity))
    if used_eps > epsilon * (1 + _SLACK) or used_delta > delta * (1 + _SLACK):
        raise InvalidRelease(f"OpenDP puts this release at ε={used_eps}, above the asked {epsilon}")
    return Noise(mechanism, sensitivity, scale, used_eps, used_delta, meas)

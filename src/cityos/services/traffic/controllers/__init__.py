"""Signal controllers, one interface (:class:`Controller`), looked up by name."""

from __future__ import annotations

from typing import Any

from ..errors import UnknownControllerError
from .actuated import ActuatedController
from .base import Controller, NativeProgram
from .cityos import CityOSController, CityOSParams
from .fixed import FixedTimeController
from .maxpressure import MaxPressureController
from .maxpressure_plain import PlainMaxPressureController
from .presets import tuned_params

CONTROLLERS: dict[str, type] = {
    "fixed": FixedTimeController,
    "actuated": ActuatedController,
    "max-pressure": MaxPressureController,
    "max-pressure-plain": PlainMaxPressureController,
    "cityos": CityOSController,
}
DEFAULT_CONTROLLER = "cityos"


def make_controller(name: str, *, network: str | None = None, **options: Any) -> Controller:
    """A fresh controller by registry name; an unknown name lists the known ones.

    Given the ``network`` it will run on, the cityos controller starts from the setting
    tuned for that network, if one ships (:mod:`.presets`); ``options`` override it.
    """
    try:
        cls = CONTROLLERS[name]
    except KeyError:
        known = ", ".join(CONTROLLERS)
        raise UnknownControllerError(
            f"unknown controller {name!r}; known controllers: {known}"
        ) from None
    if cls is CityOSController and network is not None:
        options = {**tuned_params(network), **options}
    return cls(**options)


__all__ = [
    "CONTROLLERS",
    "DEFAULT_CONTROLLER",
    "ActuatedController",
    "CityOSController",
    "CityOSParams",
    "Controller",
    "FixedTimeController",
    "MaxPressureController",
    "NativeProgram",
    "PlainMaxPressureController",
    "make_controller",
]

"""Safety service: cameras counted at the edge (OpenCV), zone alerts with masked snapshots,
cameras as devices of the hub. See docs/services/safety.md for the module map.

The plug is :mod:`.service`; the pipeline (:mod:`.pipeline`) and the modules it uses load
OpenCV, so they are imported where used, not here.
"""

from .errors import ConfigError, SafetyError, UnmaskedFrameError, UnreadableSourceError
from .service import SERVICE
from .settings import SafetySettings

__all__ = [
    "SERVICE",
    "ConfigError",
    "SafetyError",
    "SafetySettings",
    "UnmaskedFrameError",
    "UnreadableSourceError",
]

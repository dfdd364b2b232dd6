"""``cityos load FILE``: a city's initial import (buildings, meters, street furniture) into
the hub, from NGSI-LD JSON, JSON Lines, GeoJSON or CSV with a mapping (docs/load.md).

Each entity is validated exactly as the API validates it (``parse_entity``) and written by
the same batch upsert as ``POST /entityOperations/upsert``, so what a load stores — current
state, history, notifications — is what the API would store; an entity that fails is
reported with where it is in the file, and the rest goes in.
"""

from .formats import FORMATS, LoadFormatError, read_items
from .loader import LoadReport, load_items

__all__ = ["FORMATS", "LoadFormatError", "LoadReport", "load_items", "read_items"]

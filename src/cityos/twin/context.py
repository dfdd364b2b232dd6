"""The JSON-LD @context of the sample district: every term it uses, mapped to its Smart
Data Models IRI, inline so nothing is fetched over the network.

Terms shared by many models (``name``, ``address``, ``dateObserved`` …) use the generic
``https://smartdatamodels.org/<term>`` IRI, as the Smart Data Models contexts do; the rest
sit under their subject (``dataModel.Transportation/intensity``). NGSI-LD core terms
(``location``, ``observedAt``, ``unitCode``, ``Property`` …) come from the core context and
are not repeated here. A client sends ``"@context": [CONTEXT_URL, <core context>]``.
"""

from __future__ import annotations

SDM = "https://smartdatamodels.org/"

# Where the hub serves DISTRICT_CONTEXT (GET on it must return the document below). The
# host is a placeholder: the hub registers the document under this URL in its local
# document loader and answers for it itself; nothing resolves it on the internet.
CONTEXT_URL = "https://cityos.example/contexts/district.jsonld"

_GENERIC = (
    "name",
    "alternateName",
    "address",
    "addressCountry",
    "addressLocality",
    "addressRegion",
    "streetAddress",
    "dateObserved",
)

_BY_SUBJECT: dict[str, tuple[str, ...]] = {
    "dataModel.Transportation": (
        "Road",
        "RoadSegment",
        "TrafficFlowObserved",
        "roadClass",
        "length",
        "refRoad",
        "refRoadSegment",
        "laneUsage",
        "totalLaneNumber",
        "maximumAllowedSpeed",
        "allowedVehicleType",
        "intensity",
        "occupancy",
        "averageVehicleSpeed",
        "congested",
        "laneId",
        "laneDirection",
    ),
    "dataModel.UrbanMobility": (
        "GtfsStop",
        "GtfsAgency",
        "code",
        "operatedBy",
        "timezone",
        "language",
    ),
    "dataModel.Building": (
        "Building",
        "category",
        "floorsAboveGround",
        # From BuildingOperation: links a meter (ACMeasurement) to the building it meters.
        "refBuilding",
    ),
    "dataModel.Environment": (
        "AirQualityObserved",
        "no2",
        "pm25",
        "pm10",
        "temperature",
        "relativeHumidity",
    ),
    "dataModel.Energy": (
        "ACMeasurement",
        "phaseType",
        "totalActivePower",
        "totalActiveEnergyImport",
        "dateEnergyMeteringStarted",
    ),
    "dataModel.PointOfInterest": ("PointOfInterest",),
}

DISTRICT_TERMS: dict[str, str] = {term: SDM + term for term in _GENERIC}
DISTRICT_TERMS["description"] = "http://purl.org/dc/terms/description"
for _subject, _terms in _BY_SUBJECT.items():
    for _term in _terms:
        DISTRICT_TERMS[_term] = f"{SDM}{_subject}/{_term}"

# The JSON-LD document served at CONTEXT_URL.
DISTRICT_CONTEXT: dict[str, dict[str, str]] = {"@context": DISTRICT_TERMS}

# NGSI-LD core terms the district uses without defining them.
CORE_TERMS = frozenset({"location", "observedAt", "unitCode"})

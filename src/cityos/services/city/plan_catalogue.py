"""What each CityOS service is, needs and protects: the fixed part of every plan.

The words here describe this repository's services (src/cityos/services/*, the privacy
package and the hub) so that a plan asks a city for the devices and data they really
consume and promises the safeguards they really enforce."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    """One deployable CityOS service, as a plan presents it."""

    key: str
    title: str
    does: str
    devices: tuple[str, ...]
    data: tuple[str, ...]
    privacy: tuple[str, ...]
    personal_data: bool = False
    field_devices: bool = False
    takes_slot: bool = True
    """False: no devices to buy or install, so it does not use one of a phase's places."""


HUB = ServiceInfo(
    key="hub",
    title="Data hub (NGSI-LD context broker)",
    does="one standard API (ETSI NGSI-LD, as in FIWARE City OS deployments) that every "
    "device, department and service reads and writes, with history and subscriptions",
    devices=(
        "hub servers (primary and replica; PostgreSQL + PostGIS at scale)",
        "IoT gateways or a 4G link for each field device (MQTT or HTTP)",
        "city sensors the answers call for: air-quality stations, water-level sensors",
    ),
    data=(
        "an inventory of the city's existing systems and their data owners",
        "FIWARE Smart Data Models for each entity type",
    ),
    privacy=(
        "tenants, roles and API keys per department (cityos users, keys)",
        "a tamper-evident audit log of every access (cityos audit)",
        "a retention rule for every entity type (cityos retention run)",
    ),
    field_devices=False,
)

TRAFFIC = ServiceInfo(
    key="traffic",
    title="Traffic signal control and bus priority",
    does="times signals from detector counts (a pressure-based controller that holds green "
    "back from full exits; min green, clearance and max red enforced at the signal), gives "
    "late buses priority, publishes GTFS-realtime",
    devices=(
        "detectors (radar, video or loops) on every approach of upgraded junctions",
        "a signal-controller interface that accepts phase commands",
        "a GNSS tracker on every bus (for priority and GTFS-realtime)",
    ),
    data=(
        "junction layouts and phases (the signals file)",
        "the bus timetable as a GTFS feed",
    ),
    privacy=(
        "detectors count vehicles; no number plates or images are stored",
        "bus positions are of vehicles, not people; drivers' ids are not sent",
    ),
    field_devices=True,
)

ENERGY = ServiceInfo(
    key="energy",
    title="Energy scheduling and demand response",
    does="forecasts each building's load, schedules batteries and EV charging by linear "
    "programme against tariff, carbon and feeder limits, runs OCPP 2.0.1 and OpenADR 2.0b",
    devices=(
        "interval meters (15 min) with gateways on city buildings",
        "battery/PV inverters and EV chargers that speak OCPP 2.0.1",
        "an OpenADR 2.0b link with the utility, where it offers one",
    ),
    data=(
        "three weeks or more of meter history per building",
        "the time-of-use tariff and the grid's carbon intensity",
    ),
    privacy=(
        "charging-card ids (idTokens) stay in the central system, never in the hub",
        "meter data of homes, if any join, is published only aggregated per feeder",
    ),
    personal_data=True,
)

FLOWS = ServiceInfo(
    key="flows",
    title="People flows and crowding (with privacy)",
    does="crowd levels, origin-destination flows, dwell times, crowding alerts and a "
    "forecast from counters, fare taps and Wi-Fi, released only with differential privacy",
    devices=(
        "people counters at the entrances of stations, markets and event areas",
        "Wi-Fi sensors that hash device addresses on board (optional)",
        "the fare-tap feed of the payments service (optional)",
    ),
    data=("a zone map (stations, markets, event areas)",),
    privacy=(
        "pseudonyms: card numbers and Wi-Fi addresses become HMAC pseudonyms whose key "
        "changes daily (cityos.privacy.Pseudonymiser)",
        "differentially private releases only: ε = 1.0 per dataset per day, δ = 1e-6, "
        "tracked in a budget ledger",
        "retention: Wi-Fi stays 7 days, journeys 30 days, counts 365 days",
        "residents' access and erasure requests answered from the pseudonyms",
        "a data protection impact assessment before the first sensor goes up",
    ),
    personal_data=True,
    field_devices=True,
)

SAFETY = ServiceInfo(
    key="safety",
    title="Safety cameras (counted at the edge, faces masked)",
    does="counts people and raises zone alerts from camera streams on an edge computer "
    "(OpenCV); only counts, events and masked snapshots leave it",
    devices=(
        "IP cameras (RTSP) at crowded public places; existing ones reused",
        "edge computers beside the cameras",
    ),
    data=("zone definitions per camera (crossings, restricted areas)",),
    privacy=(
        "face masking: every face found and the head of every detected person pixelated "
        "before a snapshot is stored or sent; raw frames are never stored",
        "only counts and zone events reach the hub",
        "a short retention rule for snapshots; signs at every camera",
        "a data protection impact assessment and a published camera register",
    ),
    personal_data=True,
    field_devices=True,
)

PAYMENTS = ServiceInfo(
    key="payments",
    title="Cashless payments over the national QR scheme",
    does="fares and city fees over the ASEAN national QR schemes (EMVCo), a double-entry "
    "ledger with daily reconciliation, and signed tickets",
    devices=(
        "QR validators on buses",
        "printed QR signs at stops and market stalls",
    ),
    data=(
        "the fare tariff",
        "a merchant account with an acquirer of the national QR scheme",
    ),
    privacy=(
        "pseudonymous rider ids (HMAC under the city's key): no card number or phone "
        "number in the ledger or the hub",
        "ledger retention as the financial-records law requires, no longer",
    ),
    personal_data=True,
)

INDICATORS = ServiceInfo(
    key="indicators",
    title="City indicators and dashboard",
    does="ISO 37120/37122 and U4SSC indicators computed from hub data, on the operations dashboard",
    devices=("none beyond the hub's",),
    data=(
        "the indicator definitions (ISO 37120/37122, U4SSC)",
        "official population and area figures for the denominators",
    ),
    privacy=("aggregates only; small counts suppressed before publication",),
    takes_slot=False,
)

CATALOGUE: dict[str, ServiceInfo] = {
    s.key: s for s in (HUB, TRAFFIC, ENERGY, FLOWS, SAFETY, PAYMENTS, INDICATORS)
}
"""Every service in the order the brief ranks ties: hub, then the city services."""

NATIONAL_QR: dict[str, tuple[str, str | None]] = {
    "KH": ("KHQR (Bakong)", "khqr"),
    "TH": ("PromptPay", "promptpay"),
    "VN": ("VietQR (NAPAS)", "vietqr"),
    "ID": ("QRIS", "qris"),
    "MY": ("DuitNow QR", "duitnow"),
    "PH": ("QR Ph", "qrph"),
    "SG": ("SGQR / PayNow", "paynow"),
    "LA": ("LAO QR", None),
    "MM": ("MMQR", None),
    "BN": ("no national QR scheme known to CityOS", None),
}
"""Country -> (the national QR scheme, CityOS's codec for it, or None when it has none)."""

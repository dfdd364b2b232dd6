"""The street network of the sample district: real street names, approximate alignments.

Waypoints follow the streets of Daun Penh closely enough to look right on a map (Norodom
Blvd leaves Wat Phnom south-south-east, Monivong runs north–south west of the Central
Market, Sisowath Quay follows the Tonle Sap); they are traced by hand, not surveyed.
Each pair of consecutive waypoints becomes one RoadSegment.
"""

from __future__ import annotations

from dataclasses import dataclass

from .geo import LonLat


@dataclass(frozen=True)
class Street:
    """One named street: its class sets lanes, speed and capacity."""

    slug: str
    name: str
    road_class: str  # Smart Data Models Road.roadClass: primary, secondary, tertiary, residential
    lanes_per_direction: int
    max_speed_kmh: int
    one_way: bool
    waypoints: tuple[LonLat, ...]
    bus_corridor: bool = False

    @property
    def capacity_vph(self) -> int:
        """Vehicles per hour per direction: motorbike-heavy traffic packs ~900 a lane."""
        return 900 * self.lanes_per_direction


STREETS: tuple[Street, ...] = (
    Street(
        "norodom-blvd", "Norodom Blvd", "primary", 3, 40, False,
        ((104.9226, 11.5752), (104.9238, 11.5700), (104.9252, 11.5650), (104.9266, 11.5602)),
        bus_corridor=True,
    ),
    Street(
        "monivong-blvd", "Monivong Blvd", "primary", 3, 40, False,
        ((104.9185, 11.5840), (104.9182, 11.5775), (104.9179, 11.5705),
         (104.9176, 11.5655), (104.9172, 11.5603)),
        bus_corridor=True,
    ),
    Street(
        "sisowath-quay", "Sisowath Quay", "secondary", 2, 40, False,
        ((104.9301, 11.5603), (104.9297, 11.5655), (104.9290, 11.5700),
         (104.9278, 11.5745), (104.9262, 11.5790)),
        bus_corridor=True,
    ),
    Street(
        "street-13", "Street 13", "tertiary", 2, 30, True,
        ((104.9286, 11.5605), (104.9273, 11.5700), (104.9264, 11.5740)),
    ),
    Street(
        "street-19", "Street 19", "tertiary", 2, 30, True,
        ((104.9249, 11.5742), (104.9257, 11.5700), (104.9270, 11.5605)),
    ),
    Street(
        "street-47", "Street 47", "secondary", 2, 30, False,
        ((104.9224, 11.5772), (104.9219, 11.5805), (104.9214, 11.5840)),
    ),
    Street(
        "street-70", "Street 70", "tertiary", 1, 30, False,
        ((104.9183, 11.5795), (104.9220, 11.5797), (104.9264, 11.5795)),
    ),
    Street(
        "street-106", "Street 106", "tertiary", 1, 30, False,
        ((104.9181, 11.5747), (104.9225, 11.5750), (104.9276, 11.5749)),
    ),
    Street(
        "street-108", "Street 108", "secondary", 2, 30, False,
        ((104.9180, 11.5733), (104.9232, 11.5733), (104.9280, 11.5734)),
        bus_corridor=True,
    ),
    Street(
        "street-130", "Street 130", "secondary", 2, 30, False,
        ((104.9178, 11.5688), (104.9241, 11.5689), (104.9292, 11.5690)),
        bus_corridor=True,
    ),
    Street(
        "street-136", "Street 136", "tertiary", 1, 30, False,
        ((104.9177, 11.5677), (104.9244, 11.5678), (104.9294, 11.5679)),
    ),
    Street(
        "street-154", "Street 154", "tertiary", 1, 30, False,
        ((104.9176, 11.5660), (104.9249, 11.5661), (104.9296, 11.5662)),
    ),
    Street(
        "kampuchea-krom-blvd", "Kampuchea Krom Blvd", "primary", 2, 40, False,
        ((104.9152, 11.5706), (104.9179, 11.5705)),
    ),
    Street(
        "charles-de-gaulle-blvd", "Charles de Gaulle Blvd", "primary", 2, 40, False,
        ((104.9195, 11.5686), (104.9171, 11.5648), (104.9153, 11.5615)),
        bus_corridor=True,
    ),
    Street(
        "street-63", "Street 63", "tertiary", 1, 30, False,
        ((104.9219, 11.5686), (104.9224, 11.5605)),
    ),
)  # fmt: skip

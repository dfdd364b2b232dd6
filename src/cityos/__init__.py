"""CityOS: an open City OS — the NGSI-LD data hub and the city services on top of it."""

__version__ = "0.1.0"

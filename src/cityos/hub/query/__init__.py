"""Query languages of NGSI-LD: q, scopeQ, geoQ, type expressions; their evaluation and SQL."""

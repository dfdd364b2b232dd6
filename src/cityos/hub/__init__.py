"""The data hub: an ETSI NGSI-LD context broker on SQLite (embedded) and PostgreSQL."""

"""Devices: an IoT agent inside the hub — registry, southbound payloads, ingest."""

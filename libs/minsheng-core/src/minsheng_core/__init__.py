"""Shared library of the Minsheng services: event contract, bus, settings, ids and logging."""

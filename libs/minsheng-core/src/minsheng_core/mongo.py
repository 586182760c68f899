"""Opening the MongoDB-compatible store with PyMongo's async API."""

from __future__ import annotations

from pymongo import AsyncMongoClient


def mongo_client(url: str) -> AsyncMongoClient:
    """Create a client that fails fast when the store is away, instead of hanging a request."""
    return AsyncMongoClient(
        url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True, uuidRepresentation="standard"
    )

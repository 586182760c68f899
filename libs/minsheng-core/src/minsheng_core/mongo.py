"""Opening the MongoDB-compatible store with PyMongo's async API."""

from __future__ import annotations

from pymongo import AsyncMongoClient

# Operations one process has in flight at once. FerretDB's SQLite backend gives each database a pool of 100 SQLite
# connections, and an update holds one while it waits for a second: with a hundred operations in flight on one
# database (a busy classifier and store, PyMongo's default pool is 100 each) it waited for ever (a benchmark burst
# stalled). Two busy services at 16 each stay far below; a URL's own ``maxPoolSize`` wins (MongoDB proper).
MAX_POOL_SIZE = 16


def mongo_client(url: str) -> AsyncMongoClient:
    """Create a client that fails fast when the store is away, instead of hanging a request."""
    pool = {} if "maxpoolsize=" in url.lower() else {"maxPoolSize": MAX_POOL_SIZE}
    return AsyncMongoClient(
        url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True, uuidRepresentation="standard", **pool
    )

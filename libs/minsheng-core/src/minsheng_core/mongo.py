"""Opening the MongoDB-compatible store with PyMongo's async API."""

from __future__ import annotations

from pymongo import AsyncMongoClient

# Operations one process has in flight at once. FerretDB's SQLite backend gives each database a pool of 100 SQLite
# connections; a find holds one, an update statement one until its command ends, plus one for its transaction; when
# they run out, operations wait for ever. PyMongo's default (100 per client) lets a busy classifier and store exhaust
# them on their own; at 16 each, with bulk commands of at most 20 statements (batching.MAX_BULK), they stay below. A
# URL's own ``maxPoolSize`` wins (MongoDB proper has no such limit).
MAX_POOL_SIZE = 16


def mongo_client(url: str) -> AsyncMongoClient:
    """Create a client that fails fast when the store is away, instead of hanging a request."""
    pool = {} if "maxpoolsize=" in url.lower() else {"maxPoolSize": MAX_POOL_SIZE}
    return AsyncMongoClient(
        url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True, uuidRepresentation="standard", **pool
    )

"""Serialising writes to one document within the store process."""

from __future__ import annotations

import asyncio
import zlib


class StripedLocks:
    """One lock per stripe of document ids: writes to one document run one after another in this process.

    MongoDB applies each update atomically, but FerretDB 1.x reads, modifies and writes a document back without a
    transaction, so two concurrent updates of one document can lose one of them. Serialising per document here
    keeps one store replica correct on both; several replicas on FerretDB would still race (production runs MongoDB).
    """

    def __init__(self, stripes: int = 256) -> None:
        self._locks = [asyncio.Lock() for _ in range(stripes)]

    def __call__(self, key: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(key.encode()) % len(self._locks)]

"""Rate limits of the public form and the status look-up, per client: a flood gets a Chinese "try later", not the
outbox filling up, and guessing access codes takes forever. Moving windows in memory (``limits``); with several
replicas each counts its own clients (a limit per replica is still a limit)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

TOO_MANY_SUBMISSIONS = "提交过于频繁，请稍后再试。"
TOO_MANY_LOOKUPS = "查询过于频繁，请稍后再试。"


class Throttle:
    """One limit for submissions and one for look-ups, keyed by the client's address."""

    def __init__(self, submissions: str, lookups: str, trust_forwarded_for: bool = False) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._submissions: RateLimitItem = parse(submissions)
        self._lookups: RateLimitItem = parse(lookups)
        self._trust_forwarded_for = trust_forwarded_for

    def client(self, request: Request) -> str:
        """The client's address: the first X-Forwarded-For hop behind our own proxy, else the peer."""
        forwarded = request.headers.get("x-forwarded-for", "") if self._trust_forwarded_for else ""
        return forwarded.split(",")[0].strip()[:64] or (request.client.host if request.client else "unknown")

    def submission(self, request: Request) -> None:
        if not self._limiter.hit(self._submissions, "submit", self.client(request)):
            raise HTTPException(status_code=429, detail=TOO_MANY_SUBMISSIONS, headers={"Retry-After": "60"})

    def lookup(self, request: Request) -> None:
        if not self._limiter.hit(self._lookups, "lookup", self.client(request)):
            raise HTTPException(status_code=429, detail=TOO_MANY_LOOKUPS, headers={"Retry-After": "60"})

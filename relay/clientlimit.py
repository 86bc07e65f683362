"""Per-client-address POST rate limiting for WHIP/WHEP (pure bookkeeping, ``now`` passed in)."""

from __future__ import annotations

from collections import OrderedDict

from ingest.errors import TooManyRequests
from relay.cardboard import RateLimiter

MAX_TRACKED = 10_000  # addresses remembered; the least recently seen are forgotten first


class ClientLimiter:
    """Owns one token bucket per client address, bounded in how many it remembers."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: OrderedDict[str, RateLimiter] = OrderedDict()

    def check(self, address: str, now: float) -> None:
        bucket = self._buckets.pop(address, None) or RateLimiter(self.rate, self.burst)
        self._buckets[address] = bucket
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        wait = bucket.take(now)
        if wait > 0:
            raise TooManyRequests(f"too many session requests from {address}; slow down", wait)

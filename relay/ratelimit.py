"""Rate limits as pure bookkeeping (``now`` passed in): one token bucket, and one per client address.

Card actions per stream use a ``RateLimiter``; WHIP/WHEP POSTs per client address a ``ClientLimiter``.
"""

from __future__ import annotations

from collections import OrderedDict

from relay.errors import TooManyRequests

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


class RateLimiter:
    """A token bucket: ``take(now)`` is 0.0 when allowed, else the seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None

    def take(self, now: float) -> float:
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

"""What an edge keeps of the origin's LL-HLS answers, and for how long (pure: ``now`` passed in).

The origin says in ``Cache-Control`` what a CDN may keep: immutable parts and segments, playlists
for a second, blocking answers a few seconds; a protected stream's answers are private and never
kept. The cache holds at most ``max_bytes`` of bodies, least recently used out first.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

MAX_CACHE_BYTES = 64 * 1024 * 1024  # about 3 minutes of the default ladder's parts
IMMUTABLE_TTL_S = 300.0  # an immutable part outlives its use at the live edge long before this
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)")


@dataclass(frozen=True, slots=True)
class Fetched:
    """An origin's answer, as the edge passes it on."""

    status: int
    body: bytes
    content_type: str
    cache_control: str


def cache_ttl(status: int, cache_control: str) -> float:
    """How long an edge may keep an answer (0: not at all), from the origin's ``Cache-Control``."""
    directives = cache_control.lower()
    if status != 200 or "private" in directives or "no-store" in directives or "no-cache" in directives:
        return 0.0
    if "immutable" in directives:
        return IMMUTABLE_TTL_S
    match = _MAX_AGE.search(directives)
    return float(match.group(1)) if match else 0.0


class ResponseCache:
    """Answers by request, each until its expiry, at most ``max_bytes`` of bodies in all
    (the least recently used go first). Expired entries are never returned."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[Fetched, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> Fetched | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: str, fetched: Fetched, ttl_s: float, now: float) -> None:
        if ttl_s <= 0 or len(fetched.body) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (fetched, now + ttl_s)
        self.bytes += len(fetched.body)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        fetched, _ = self._entries.pop(key)
        self.bytes -= len(fetched.body)

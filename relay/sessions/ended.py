"""Which sessions ended moments ago, so that a late DELETE for one gets 200 rather than 404.

Real players close their peer connection before they send DELETE (medooze's whip-whep does): the
server sees the close, ends the session, and the DELETE that follows finds nothing. RFC 9725's
DELETE asks the server to end the session; it is ended, so the honest answer is success. A 404
made such players log an error on every stop.

Pure (``now`` is a parameter) and bounded: at most ``capacity`` ids, each for ``ttl_s`` seconds;
the oldest are forgotten first, so a flood of short sessions costs a fixed amount of memory.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_CAPACITY = 4096
DEFAULT_TTL_S = 60.0


class RecentlyEnded:
    """Owns the record of recently ended session ids (with their stream) and when they ended."""

    __slots__ = ("_ended", "capacity", "ttl_s")

    def __init__(self, capacity: int = DEFAULT_CAPACITY, ttl_s: float = DEFAULT_TTL_S) -> None:
        if capacity < 1 or ttl_s <= 0:
            raise ValueError("capacity must be >= 1 and ttl_s > 0")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._ended: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id -> (stream, ended at)

    def __len__(self) -> int:
        return len(self._ended)

    def record(self, session_id: str, stream: str, now: float) -> None:
        """``session_id`` of ``stream`` ended at ``now``."""
        self._expire(now)
        self._ended.pop(session_id, None)
        self._ended[session_id] = (stream, now)
        while len(self._ended) > self.capacity:
            self._ended.popitem(last=False)

    def ended(self, session_id: str, stream: str, now: float) -> bool:
        """Whether ``session_id`` of ``stream`` ended within the last ``ttl_s`` seconds."""
        self._expire(now)
        entry = self._ended.get(session_id)
        return entry is not None and entry[0] == stream and now - entry[1] < self.ttl_s

    def _expire(self, now: float) -> None:
        # Entries are in the order they were recorded: with a monotonic clock the oldest is
        # first, so expiry stops at the first fresh one (``ended`` checks its own entry's age too).
        ended = self._ended
        while ended:
            _, (_, at) = next(iter(ended.items()))
            if now - at < self.ttl_s:
                return
            ended.popitem(last=False)

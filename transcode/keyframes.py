"""Keyframe-request coalescing: many viewers ask, the encoder makes at most one IDR per interval.

Pure logic: time is a parameter, so tests need no clock.
"""

from __future__ import annotations


class KeyframeGate:
    """Owns the pending-IDR flag of one encoder.

    ``request(now)`` records that someone needs a keyframe (a joining viewer, a PLI).
    ``should_force(now)`` is asked once per frame by the encoder: it answers True at most once
    per ``min_interval_s`` and only while a request is pending. A keyframe the encoder makes by
    itself (GOP boundary) satisfies pending requests through ``keyframe_sent(now)``.
    """

    __slots__ = ("_last_keyframe_at", "_pending", "min_interval_s")

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._pending = False
        self._last_keyframe_at: float | None = None

    @property
    def pending(self) -> bool:
        return self._pending

    def request(self, now: float) -> None:
        del now  # kept in the signature: callers always pass the time they asked at
        self._pending = True

    def should_force(self, now: float) -> bool:
        if not self._pending:
            return False
        last = self._last_keyframe_at
        return last is None or now - last >= self.min_interval_s

    def keyframe_sent(self, now: float) -> None:
        """Record a keyframe that went out at ``now``; pending requests are satisfied."""
        self._last_keyframe_at = now
        self._pending = False

"""Keyframe requests (RTCP PLI) to a publisher: at once when a picture is lost, then repeated at
a bounded rate until a keyframe arrives.

aiortc's receiver asks only when its 512-packet buffer overflows or its decoder fails, so a lost
frame froze viewers until the publisher's next periodic keyframe. A PLI can itself be lost, and
some publishers (OBS) never answer one: repeating at most once per ``min_interval_s`` covers the
first without flooding the second. Pure: time is a parameter.
"""

from __future__ import annotations


class KeyframeRequests:
    """Owns whether a keyframe is wanted and when the last request went out."""

    __slots__ = ("_last_sent", "_wanted", "min_interval_s", "sent")

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._wanted = False
        self._last_sent: float | None = None
        self.sent = 0

    @property
    def wanted(self) -> bool:
        return self._wanted

    def want(self) -> None:
        """A picture is lost: a keyframe is needed."""
        self._wanted = True

    def due(self, now: float) -> bool:
        """Whether to send a request now; True at most once per ``min_interval_s``, only while one
        is wanted. A True answer counts as sent."""
        if not self._wanted:
            return False
        if self._last_sent is not None and now - self._last_sent < self.min_interval_s:
            return False
        self._last_sent = now
        self.sent += 1
        return True

    def got_keyframe(self) -> None:
        self._wanted = False

    def next_wakeup(self) -> float | None:
        if not self._wanted:
            return None
        return self._last_sent + self.min_interval_s if self._last_sent is not None else float("-inf")

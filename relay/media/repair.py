"""How much one viewer's NACKs may be answered (pure: no I/O, ``now`` passed in).

Answering every NACK on a link that is already full makes it fuller: the repairs queue behind
the media, arrive late, are NACKed again, and the viewer freezes while the server sends many
times its media rate in retransmissions (seen: 34,251 resent against ~1,400 media packets in
40 s on a 600 kbit/s link). So each viewer's retransmissions draw on a token bucket filled at a
share of its bandwidth estimate; a packet is not resent twice within a round trip (the first
copy may still be on its way), nor once it is too old to be played; and what the budget
refuses is counted, so that the rendition choice can move a viewer whose link cannot carry its
rung plus repairs down a rung instead.
"""

from __future__ import annotations

SHARE = 0.15  # of the viewer's estimate that repairs may use
BURST_S = 0.1  # the bucket holds this many seconds of its rate (a frame's worth of repairs)
MIN_BURST_BYTES = 2_400  # two full packets, so a low rate can still repair a single loss
MAX_AGE_S = 1.0  # older than this, a packet would reach the decoder after it gave the frame up
DEFAULT_RTT_S = 0.1


class RepairBudget:
    """Owns one viewer's retransmission allowance, its resend memory and refusal counters."""

    __slots__ = ("_last_fill", "_resent", "_tokens", "burst", "rate_bps", "refused_age", "refused_budget",
                 "refused_recent", "rtt_s", "sent", "sent_bytes")  # fmt: skip

    def __init__(self, rate_bps: float, now: float) -> None:
        self.rate_bps = rate_bps
        self.burst = max(rate_bps / 8 * BURST_S, MIN_BURST_BYTES)
        self._tokens = self.burst
        self._last_fill = now
        self._resent: dict[int, float] = {}  # output sequence number -> when it was last resent
        self.rtt_s = DEFAULT_RTT_S
        self.sent = 0
        self.sent_bytes = 0
        self.refused_budget = 0
        self.refused_age = 0
        self.refused_recent = 0

    @property
    def refused(self) -> int:
        return self.refused_budget + self.refused_age + self.refused_recent

    def set_rate(self, estimate_bps: float, now: float) -> None:
        """The viewer's estimate changed: repairs may use ``SHARE`` of it from now on."""
        self._fill(now)
        self.rate_bps = max(estimate_bps, 0.0) * SHARE
        self.burst = max(self.rate_bps / 8 * BURST_S, MIN_BURST_BYTES)
        self._tokens = min(self._tokens, self.burst)

    def _fill(self, now: float) -> None:
        elapsed = now - self._last_fill
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate_bps / 8)
            self._last_fill = now

    def allow(self, seq: int, size: int, age_s: float, now: float) -> bool:
        """Whether to resend packet ``seq`` (``size`` bytes, sent ``age_s`` ago) now; if so, it is
        charged to the budget."""
        if age_s > MAX_AGE_S:
            self.refused_age += 1
            return False
        last = self._resent.get(seq)
        if last is not None and now - last < self.rtt_s:
            self.refused_recent += 1
            return False
        self._fill(now)
        if self._tokens < size:
            self.refused_budget += 1
            return False
        self._tokens -= size
        self._resent[seq] = now
        if len(self._resent) > 1024:
            self._resent = {s: t for s, t in self._resent.items() if now - t < MAX_AGE_S}
        self.sent += 1
        self.sent_bytes += size
        return True

"""When to ask a publisher again for a lost packet, and when to stop asking.

aiortc's receiver NACKs a gap once, at the moment it sees it, and only within the last 128
packets: a lost NACK or a lost retransmission is never repaired, and the frame waits until its
jitter buffer overflows. This schedule NACKs a missing packet at once, again every re-NACK
interval (from the measured round trip) while it is still missing, and gives it up once it has
been missing for the deadline: by then it is too late to be worth showing. Pure: time is a
parameter.
"""

from __future__ import annotations

MIN_RENACK_S = 0.02  # never re-ask faster than this, however short the round trip
MAX_RENACK_S = 0.12  # nor slower: a few tries must fit in the deadline


class NackSchedule:
    """Owns the set of missing sequence numbers (extended, so they never wrap) and when each was
    first missed and last asked for.

    ``missing`` adds gaps, ``arrived`` removes a packet (and times its repair, which sets the
    re-NACK interval), ``due`` says which to NACK now, ``expired`` which to give up on.
    At most ``max_tracked`` are kept: the oldest beyond that are given up at once.
    """

    __slots__ = ("_missing", "_srtt", "deadline_s", "given_up", "max_tracked", "nacked", "recovered")

    def __init__(self, *, deadline_s: float, max_tracked: int = 512) -> None:
        self.deadline_s = deadline_s
        self.max_tracked = max_tracked
        self._missing: dict[int, list[float]] = {}  # seq -> [first missed at, last NACKed at (-1: never)]
        self._srtt: float | None = None  # smoothed NACK -> retransmission time
        self.nacked = 0  # sequence numbers NACKed, counting each re-NACK
        self.recovered = 0
        self.given_up = 0

    def __len__(self) -> int:
        return len(self._missing)

    def __contains__(self, seq: int) -> bool:
        return seq in self._missing

    @property
    def renack_s(self) -> float:
        """The wait before asking again: 1.5 round trips plus slack for the publisher's own loop."""
        if self._srtt is None:
            return 0.05
        return min(MAX_RENACK_S, max(MIN_RENACK_S, 1.5 * self._srtt + 0.01))

    def missing(self, first: int, end: int, now: float) -> list[int]:
        """Sequence numbers ``first`` .. ``end - 1`` are missing as of ``now``. Returns those given
        up at once because more than ``max_tracked`` would be tracked."""
        start = max(first, end - self.max_tracked)
        for seq in range(start, end):
            self._missing.setdefault(seq, [now, -1.0])
        dropped = list(range(first, start))
        if len(self._missing) > self.max_tracked:
            for seq in sorted(self._missing)[: len(self._missing) - self.max_tracked]:
                del self._missing[seq]
                dropped.append(seq)
        self.given_up += len(dropped)
        return dropped

    def arrived(self, seq: int, now: float) -> bool:
        """A packet arrived; True if it was one we were missing (a repair)."""
        entry = self._missing.pop(seq, None)
        if entry is None:
            return False
        self.recovered += 1
        if entry[1] >= 0:
            sample = now - entry[1]
            self._srtt = sample if self._srtt is None else 0.875 * self._srtt + 0.125 * sample
        return True

    def due(self, now: float) -> list[int]:
        """The sequence numbers to NACK now (first asks and re-asks); each is marked asked."""
        wait = self.renack_s
        out = []
        for seq, entry in self._missing.items():
            if now - entry[0] >= self.deadline_s:
                continue  # too late to be useful: ``expired`` gives it up
            if entry[1] < 0 or now - entry[1] >= wait:
                entry[1] = now
                out.append(seq)
        self.nacked += len(out)
        return out

    def expired(self, now: float) -> list[int]:
        """The sequence numbers missing for the deadline or longer: removed, and returned."""
        gone = [seq for seq, entry in self._missing.items() if now - entry[0] >= self.deadline_s]
        for seq in gone:
            del self._missing[seq]
        self.given_up += len(gone)
        return gone

    def forget_below(self, seq: int) -> None:
        """Stop asking for anything before ``seq`` (it no longer matters)."""
        for old in [s for s in self._missing if s < seq]:
            del self._missing[old]

    def first_missing(self) -> int | None:
        return min(self._missing) if self._missing else None

    def next_wakeup(self) -> float | None:
        """The earliest time a re-NACK or a give-up falls due."""
        if not self._missing:
            return None
        wait = self.renack_s
        return min(
            min(entry[0] + self.deadline_s, entry[1] + wait if entry[1] >= 0 else entry[0])
            for entry in self._missing.values()
        )

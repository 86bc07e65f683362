"""What the fan-out remembers of each rung: its recent packets (for NACKs) and its current GOP
(for joins that need not wait for a keyframe). Pure: no I/O, time passed in.

Both are shared by every viewer of a rung: a viewer's NACK is answered from the rung's packets,
re-headed for that viewer (``relay.media.rewriter``), and a joining viewer replays the cached
frames since the rung's last keyframe instead of forcing a new one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Generic, TypeVar

F = TypeVar("F")

# (sequence number, payload, media timestamp, marker bit): one packet as the rung sent it.
Packet = tuple[int, bytes, int, bool]


class PacketHistory:
    """Owns one rung's packet numbering and its last ``size`` packets.

    Sequence numbers are unbounded integers here; viewers see them modulo 2**16, so ``find``
    takes a 16-bit number and answers for the newest packet that has it.
    """

    __slots__ = ("_ring", "next_seq", "size")

    def __init__(self, size: int, first_seq: int | None = None) -> None:
        self.size = size
        self.next_seq = random.getrandbits(16) if first_seq is None else first_seq
        self._ring: list[Packet | None] = [None] * size

    def add(self, payloads: Sequence[bytes], ts: int) -> int:
        """Number and keep one frame's packets; returns the first one's number."""
        ring = self._ring
        size = self.size
        first = self.next_seq
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            seq = first + i
            ring[seq % size] = (seq, payload, ts, i == last)
        self.next_seq = first + len(payloads)
        return first

    def find(self, seq16: int) -> Packet | None:
        """The kept packet whose number is ``seq16`` modulo 2**16 (None if too old or never sent)."""
        newest = self.next_seq - 1
        seq = newest - ((newest - seq16) & 0xFFFF)
        entry = self._ring[seq % self.size]
        return entry if entry is not None and entry[0] == seq else None


class GopCache(Generic[F]):
    """Owns the frames of one rung since its last keyframe, at most ``limit`` of them.

    Past the limit (a long GOP) it stops growing and can no longer serve joins until the next
    keyframe: a join must start at a keyframe and receive every frame after it.
    """

    __slots__ = ("frames", "limit", "started_at")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames: list[F] = []
        self.started_at: float | None = None  # when the keyframe that opens ``frames`` was added

    def add(self, frame: F, keyframe: bool, now: float) -> None:
        if keyframe:
            self.frames = [frame]
            self.started_at = now
        elif self.frames and self.started_at is not None:
            if len(self.frames) < self.limit:
                self.frames.append(frame)
            else:  # incomplete from here on: joins wait for the next keyframe
                self.clear()

    def fresh(self, now: float, window_s: float) -> list[F] | None:
        """The frames a joining viewer can start from, if the keyframe is under ``window_s`` old."""
        started = self.started_at
        if self.frames and started is not None and now - started < window_s:
            return self.frames
        return None

    def clear(self) -> None:
        self.frames = []
        self.started_at = None

"""A publisher's video packets in, whole encoded frames out, in order, with a deadline.

What aiortc's receiver does instead, and why it froze viewers for seconds: it waits for a lost
packet until its 512-packet buffer overflows (1-2 s of video), then hands out everything it
held, so viewers saw a freeze and then a burst of stale frames. Here a frame that cannot be
completed in time is given up: a keyframe is requested at once (``KeyframeRequests``), the
buffer skips to the next complete keyframe it has or gets, and the frames before it are dropped,
never delivered late. Lost packets are NACKed and re-NACKed by a ``NackSchedule`` until their
deadline.

"In time" is two rules: a packet missing for ``deadline_s`` (judged when later packets arrive,
so a stalled event loop does not give up repairs waiting in its socket); or a hole that spans
more than ``deadline_s`` of media (by RTP timestamp), as after an outage, where waiting for
repairs could only end in a burst of old frames.

Pure: no sockets, no clock (``now`` is a parameter), no codec. The caller sends the NACKs and
PLIs it is told to and hands the frames on.
"""

from __future__ import annotations

from typing import NamedTuple

from ingest.h264 import carries_idr, depacketize, starts_access_unit
from ingest.nack import NackSchedule
from ingest.pli import KeyframeRequests

VIDEO_CLOCK_HZ = 90_000


class Packet(NamedTuple):
    timestamp: int
    marker: bool
    payload: bytes


class AssembledFrame(NamedTuple):
    """One whole access unit of the publisher's, Annex-B, with its RTP timestamp."""

    data: bytes
    timestamp: int
    keyframe: bool


class ReceiveStats(NamedTuple):
    """The buffer's counters (cumulative), for the API and the metrics."""

    packets_received: int
    packets_missing: int  # gaps seen (each lost packet once, repaired or not)
    packets_recovered: int  # missing packets that arrived later (mostly retransmissions)
    packets_unrecovered: int  # given up on, or skipped with an outage
    packets_late: int  # arrived after their frame was given up or delivered
    packets_duplicate: int
    packets_malformed: int
    nacks: int  # sequence numbers asked for, counting each re-ask
    keyframe_requests: int
    frames_delivered: int
    frames_late: int  # frames given up because they could not be completed in time
    frames_skipped: int  # complete frames dropped while waiting for a keyframe
    loss: float  # packets_missing / packets expected: the link's own loss before repair


def _ts_ahead(a: int, b: int) -> int:
    """How far RTP timestamp ``a`` is after ``b`` (negative if before), mod 2**32."""
    return ((a - b + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


class JitterBuffer:
    """Owns one publisher video stream's packets, its frame-assembly position, its NACK schedule
    and its keyframe requests.

    ``push`` a packet and ``poll`` at ``next_wakeup()``; both return the frames now ready, in
    order. After each, ``nacks(now)`` and ``keyframe_due(now)`` say what to send the publisher.
    At most ``max_packets`` are held: past that the oldest are dropped (and their frames lost).
    """

    def __init__(
        self,
        *,
        deadline_s: float = 0.25,
        keyframe_interval_s: float = 0.3,
        max_packets: int = 2048,
    ) -> None:
        self.deadline_s = deadline_s
        self.max_packets = max_packets
        self._stale_ticks = round(deadline_s * VIDEO_CLOCK_HZ)
        self._packets: dict[int, Packet] = {}
        self._idr: set[int] = set()  # held packets that carry an IDR slice
        self._highest: int | None = None  # extended sequence number of the newest packet
        self._first: int | None = None
        self._next: int = 0  # the next sequence number to deliver from (or, skipping, the floor)
        self._skipping = True  # waiting for a keyframe: at the start and after a loss
        self._skip_check_at: float | None = None  # skipping: when to drop what went stale
        self._newest_ts = 0
        self._last_arrival: float | None = None
        self._last_ts: int | None = None  # RTP timestamp of the last frame delivered
        self.nack = NackSchedule(deadline_s=deadline_s)
        self.keyframes = KeyframeRequests(keyframe_interval_s)
        self._received = 0
        self._missing = 0
        self._late = 0
        self._duplicate = 0
        self._malformed = 0
        self._delivered = 0
        self._frames_late = 0
        self._skipped = 0

    # ---- input ------------------------------------------------------------------------------
    def _extend(self, seq: int) -> int:
        if self._highest is None:
            return seq
        diff = ((seq - self._highest + 0x8000) & 0xFFFF) - 0x8000
        return self._highest + diff

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes, now: float) -> list[AssembledFrame]:
        """A packet arrived (RTP sequence number, timestamp, marker bit, payload)."""
        ext = self._extend(seq)
        if self._highest is None:
            self._highest = self._first = ext
            self._next = ext
            self._skip_check_at = now + self.deadline_s
        if ext < self._next:
            self._late += 1
            return []
        if ext in self._packets:
            self._duplicate += 1
            return []
        if not payload:
            self._malformed += 1
            return []
        self._received += 1
        self._last_arrival = now
        if ext - self._next >= self.max_packets:
            # Far beyond everything held (a restarted sender, or a very long outage): start over.
            self._restart(ext, now)
        repaired = self.nack.arrived(ext, now)
        if ext > self._highest:
            if ext > self._highest + 1:
                self._missing += ext - self._highest - 1
                self.nack.missing(self._highest + 1, ext, now)
            self._highest = ext
            self._newest_ts = timestamp
        elif not repaired:
            self._late += 1  # older than the newest and not awaited: its deadline had passed
        self._packets[ext] = Packet(timestamp, marker, payload)
        if carries_idr(payload):
            self._idr.add(ext)
        if len(self._packets) > self.max_packets:
            self._give_up(min(self._packets) + 1, now)
        return self._drain(now)

    def poll(self, now: float) -> list[AssembledFrame]:
        """Apply the deadlines: give up what is too late, skip ahead if that frees anything.

        A hole's deadline is judged by the arrival of the packets after it, not by the clock
        alone: when the event loop stalls, a repair may be waiting in the socket while the timer
        fires, and giving up then would cost a picture for nothing.
        """
        if self._last_arrival is not None:
            self.nack.expired(self._last_arrival)
        if self._skipping and self._skip_check_at is not None and now >= self._skip_check_at:
            self._skip_check_at = now + self.deadline_s
            if self._drop_stale():
                self.keyframes.want()  # e.g. joined mid-GOP: packets went stale and no keyframe came
        return self._drain(now)

    # ---- output to the publisher ----------------------------------------------------------
    def nacks(self, now: float) -> list[int]:
        """RTP sequence numbers (16-bit) to NACK now, ascending and once each: aiortc packs a NACK
        list by each number's distance from the one before, and raises ``ValueError`` (which ends
        the publisher's whole DTLS transport) on one that goes back, as 65535 -> 0 does at the wrap."""
        return sorted({seq & 0xFFFF for seq in self.nack.due(now)})

    def keyframe_due(self, now: float) -> bool:
        """Whether to send a PLI now."""
        return self.keyframes.due(now)

    def next_wakeup(self) -> float | None:
        """When ``poll`` (and then ``nacks``/``keyframe_due``) next has something to do."""
        skip_check = self._skip_check_at if self._skipping else None
        times = [t for t in (self.nack.next_wakeup(), self.keyframes.next_wakeup(), skip_check) if t is not None]
        return min(times) if times else None

    # ---- assembly ----------------------------------------------------------------------------
    def _drain(self, now: float) -> list[AssembledFrame]:
        out: list[AssembledFrame] = []
        while True:
            if self._skipping:
                frame = self._find_keyframe(now)
                if frame is None:
                    return out
            else:
                frame = self._head(now)
                if frame is None:
                    return out
            out.append(frame)

    def _frame_at(self, start: int) -> tuple[int, list[bytes]] | None:
        """(last sequence number, payloads) of the frame starting at ``start``, if all of it is here."""
        packets = self._packets
        first = packets[start]
        payloads = [first.payload]
        seq = start
        packet = first
        while not packet.marker:
            following = packets.get(seq + 1)
            if following is None:
                return None
            if following.timestamp != first.timestamp:
                break  # the sender set no marker bit: a new timestamp ends the frame too
            seq += 1
            packet = following
            payloads.append(packet.payload)
        return seq, payloads

    def _deliver(self, start: int, end: int, payloads: list[bytes], now: float) -> AssembledFrame | None:
        timestamp = self._packets[start].timestamp
        keyframe = any(s in self._idr for s in range(start, end + 1))
        self._drop_below(end + 1)
        self._next = end + 1
        self.nack.forget_below(end + 1)
        try:
            data = depacketize(payloads)
        except ValueError:
            self._malformed += 1
            self._lose_picture(now)
            return None
        self._last_ts = timestamp
        self._delivered += 1
        if keyframe:
            self.keyframes.got_keyframe()
        return AssembledFrame(data, timestamp, keyframe)

    def _head(self, now: float) -> AssembledFrame | None:
        """The next frame in order, or None while it is incomplete (giving it up if too late)."""
        start = self._next
        if start in self._packets:
            found = self._frame_at(start)
            if found is not None:
                frame = self._deliver(start, *found, now)
                return frame if frame is not None else self._find_keyframe(now)
        if self._head_too_late(start):
            self._frames_late += 1
            self._lose_picture(now)
            self._drop_stale()  # after an outage: never a burst of old frames, nor NACKs for them
            return self._find_keyframe(now)
        return None

    def _head_too_late(self, start: int) -> bool:
        gap = start
        while gap in self._packets:
            gap += 1
        if self._highest is None or gap > self._highest:
            return False  # the rest of the frame is still on its way, nothing is lost
        if gap not in self.nack:
            return True  # the hole was given up (its deadline passed, or beyond the tracked window)
        # The hole spans more media time than the deadline (an outage, not a lost packet): what
        # it held is too old to show, and waiting for it could only end in a burst of old frames.
        if self._last_ts is None:
            return False
        after = gap + 1
        while after not in self._packets:
            after += 1  # ends: ``gap`` < highest, which is held
        return _ts_ahead(self._packets[after].timestamp, self._last_ts) > self._stale_ticks

    def _lose_picture(self, now: float) -> None:
        """The next frame cannot be had: ask for a keyframe and skip to it."""
        self._skipping = True
        self._skip_check_at = now + self.deadline_s
        self.keyframes.want()

    def _find_keyframe(self, now: float) -> AssembledFrame | None:
        """Skipping: the first complete keyframe held, delivered, with everything before it dropped."""
        tried: int | None = None
        for idr in sorted(self._idr):
            timestamp = self._packets[idr].timestamp
            if timestamp == tried:
                continue  # one attempt per picture, from its first IDR packet
            tried = timestamp
            start = idr
            while (before := self._packets.get(start - 1)) is not None and before.timestamp == timestamp:
                start -= 1  # the SPS/PPS (and SEI) packets that lead the IDR slices
            if before is None:
                if not starts_access_unit(self._packets[start].payload):
                    continue  # its first packet is missing
            elif not before.marker and before.timestamp == timestamp:
                continue
            found = self._frame_at(start)
            if found is None:
                continue
            self._skipped += self._frames_before(start)
            self._skipping = False
            frame = self._deliver(start, *found, now)
            if frame is not None:
                return frame
        return None

    def _frames_before(self, start: int) -> int:
        """Complete-looking frames held before ``start`` (what skipping to it drops)."""
        return len({p.timestamp for s, p in self._packets.items() if s < start and p.marker})

    def _drop_stale(self) -> bool:
        """Skipping: what is older than the deadline (by RTP time) behind the newest packet can
        never be shown; drop it, and stop asking for anything before the oldest fresh packet."""
        horizon = self._stale_ticks
        newest = self._newest_ts
        fresh = [s for s, p in self._packets.items() if _ts_ahead(newest, p.timestamp) <= horizon]
        cut = min(fresh) if fresh else (self._highest or 0) + 1
        if cut <= self._next:
            return False
        self._skipped += len({p.timestamp for s, p in self._packets.items() if s < cut and p.marker})
        self._give_up(cut, None)
        return True

    def _give_up(self, below: int, now: float | None) -> None:
        self._drop_below(below)
        self._next = max(self._next, below)
        self.nack.forget_below(below)
        if not self._skipping and now is not None:
            self._frames_late += 1
            self._lose_picture(now)

    def _drop_below(self, seq: int) -> None:
        for old in [s for s in self._packets if s < seq]:
            del self._packets[old]
            self._idr.discard(old)

    def _restart(self, ext: int, now: float) -> None:
        self._packets.clear()
        self._idr.clear()
        self.nack.forget_below(ext)
        self._highest = ext
        self._next = ext
        self._lose_picture(now)

    # ---- introspection ----------------------------------------------------------------------
    def stats(self) -> ReceiveStats:
        expected = (self._highest - self._first + 1) if self._highest is not None and self._first is not None else 0
        return ReceiveStats(
            packets_received=self._received,
            packets_missing=self._missing,
            packets_recovered=self.nack.recovered,
            # Given up at a deadline, or dropped with a stale hole (an outage): never repaired.
            packets_unrecovered=max(0, self._missing - self.nack.recovered - len(self.nack)),
            packets_late=self._late,
            packets_duplicate=self._duplicate,
            packets_malformed=self._malformed,
            nacks=self.nack.nacked,
            keyframe_requests=self.keyframes.sent,
            frames_delivered=self._delivered,
            frames_late=self._frames_late,
            frames_skipped=self._skipped,
            loss=self._missing / expected if expected else 0.0,
        )

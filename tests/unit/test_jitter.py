"""The publisher-side jitter buffer: frames out whole and in order, NACK and re-NACK until the
deadline, then a keyframe request at once and a skip to the next keyframe, never a late frame."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from aiortc.rtp import RtcpRtpfbPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.jitter import AssembledFrame, JitterBuffer
from ingest.nack import MIN_RENACK_S, NackSchedule
from ingest.pli import KeyframeRequests
from relay.media.rtp import packetize_h264

FPS = 30
TICKS = 3000  # 90 kHz / 30 fps


def _frame(n: int, key: bool, rng: random.Random) -> bytes:
    fill = bytes([n % 250 + 1])
    if key:
        nals = [b"\x67\x42\xc0\x1f" + fill, b"\x68\xce\x01", b"\x65\x88" + fill * rng.randint(100, 4000)]
    else:
        nals = [b"\x41\x9a" + fill * rng.randint(20, 1500)]
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


@dataclass
class Link:
    """A publisher (keyframe every ``gop`` frames, or on PLI) and a lossy link to the buffer."""

    seed: int
    loss: float = 0.0
    nack_loss: float = 0.0  # a NACK or its retransmission lost
    gop: int = 60
    honours_pli: bool = True
    buffer: JitterBuffer = field(default_factory=JitterBuffer)
    frames: list[bytes] = field(default_factory=list)
    sent: dict[int, tuple[int, bool, bytes]] = field(default_factory=dict)
    got: list[AssembledFrame] = field(default_factory=list)
    plis: list[float] = field(default_factory=list)
    nacked: dict[int, list[float]] = field(default_factory=dict)
    seq: int = 65_400  # wraps early
    force_key: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def run(self, frames: int, outage: range = range(0)) -> None:
        """Send the next ``frames`` frames (numbered on from the last run); ``outage``: frames lost whole."""
        for n in range(len(self.frames), len(self.frames) + frames):
            now = n / FPS
            key = n % self.gop == 0 or self.force_key
            self.force_key = False
            data = _frame(n, key, self.rng)
            self.frames.append(data)
            timestamp = (n * TICKS + 0xFFFF_0000) & 0xFFFF_FFFF  # wraps too
            payloads = packetize_h264(data)
            for i, payload in enumerate(payloads):
                seq = self.seq & 0xFFFF
                self.seq += 1
                marker = i == len(payloads) - 1
                self.sent[seq] = (timestamp, marker, payload)
                # (The very first packet always arrives: a receiver cannot ask for what it never knew of.)
                if n in outage or (self.sent and len(self.sent) > 1 and self.rng.random() < self.loss):
                    continue
                self.got += self.buffer.push(seq, timestamp, marker, payload, now)
                self._answer(now)
            self.got += self.buffer.poll(now + 0.01)
            self._answer(now + 0.01)

    def _answer(self, now: float) -> None:
        lost = self.buffer.nacks(now)
        if lost:  # what the receiver hands aiortc must serialise (across the wrap too)
            bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=lost))
        for seq in lost:
            self.nacked.setdefault(seq, []).append(now)
            if self.rng.random() >= self.nack_loss:
                timestamp, marker, payload = self.sent[seq]
                self.got += self.buffer.push(seq, timestamp, marker, payload, now + 0.002)
        if self.buffer.keyframe_due(now):
            self.plis.append(now)
            self.force_key = self.honours_pli

    def index(self, frame: AssembledFrame) -> int:
        return ((frame.timestamp - 0xFFFF_0000) & 0xFFFF_FFFF) // TICKS


def _check_order_and_content(link: Link) -> list[int]:
    indices = [link.index(f) for f in link.got]
    assert indices == sorted(set(indices)), "frames out of order or twice"
    for frame, n in zip(link.got, indices, strict=True):
        assert frame.data == link.frames[n]
    if link.got:
        assert link.got[0].keyframe
    # A skipped frame breaks the reference chain: the next one out must be a keyframe.
    for i in range(1, len(indices)):
        if indices[i] != indices[i - 1] + 1:
            assert link.got[i].keyframe, f"frame {indices[i]} follows {indices[i - 1]} without a keyframe"
    return indices


def test_a_clean_link_delivers_every_frame_with_no_nack_and_no_pli() -> None:
    link = Link(seed=1)
    link.run(200)
    assert _check_order_and_content(link) == list(range(200))
    assert not link.nacked and not link.plis


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.1))
def test_loss_repaired_by_nacks_loses_no_frame(seed: int, loss: float) -> None:
    link = Link(seed=seed, loss=loss)
    link.run(150)
    link.loss = 0.0
    link.run(2)  # a lost last packet shows only when a later one arrives
    assert _check_order_and_content(link) == list(range(152))
    assert not link.plis


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 0.3), st.floats(0.0, 1.0), st.booleans())
def test_whatever_is_lost_frames_stay_whole_ordered_and_decodable(
    seed: int, loss: float, nack_loss: float, honours_pli: bool
) -> None:
    link = Link(seed=seed, loss=loss, nack_loss=nack_loss, honours_pli=honours_pli)
    link.run(200)
    _check_order_and_content(link)
    assert len(link.buffer._packets) <= link.buffer.max_packets
    # Requests are rate-limited.
    gaps = [b - a for a, b in itertools.pairwise(link.plis)]
    assert all(g >= link.buffer.keyframes.min_interval_s - 1e-9 for g in gaps)
    # No sequence number is asked for faster than the minimum re-NACK interval, nor after its deadline.
    for times in link.nacked.values():
        assert all(b - a >= MIN_RENACK_S - 1e-9 for a, b in itertools.pairwise(times))
        assert times[-1] - times[0] <= link.buffer.deadline_s + 1e-9


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_an_unrepairable_loss_asks_for_a_keyframe_within_the_deadline_and_recovers(seed: int) -> None:
    link = Link(seed=seed, nack_loss=1.0)
    link.run(40)
    link.loss = 0.5
    link.run(1)  # frame 40 loses packets (probably) and none is ever repaired
    link.loss = 0.0
    link.run(60)
    if link.buffer.stats().packets_missing == 0:
        return
    indices = _check_order_and_content(link)
    first_nack = min(min(times) for times in link.nacked.values())
    # Given up at the first packet after the deadline (one frame interval at most), PLI at once.
    assert link.plis and link.plis[0] - first_nack <= link.buffer.deadline_s + 1 / FPS + 0.02
    assert indices[-1] == 100  # the requested keyframe brought the stream back


def test_after_an_outage_the_first_packet_gives_up_at_once_and_no_stale_frame_comes_out() -> None:
    link = Link(seed=5)
    link.run(90, outage=range(40, 70))  # a 1 s outage (the sender keeps numbering its packets)
    indices = _check_order_and_content(link)
    assert link.plis and abs(link.plis[0] - 70 / FPS) < 0.02  # the PLI went at the first packet back
    assert not any(40 <= n < 70 for n in indices)  # frames from the outage never shown late
    assert indices[-1] == 89
    stats = link.buffer.stats()
    assert stats.frames_late >= 1 and stats.keyframe_requests >= 1


def test_a_publisher_that_ignores_pli_resumes_at_its_next_periodic_keyframe() -> None:
    link = Link(seed=9, honours_pli=False, gop=60)
    link.run(150, outage=range(20, 30))
    indices = _check_order_and_content(link)
    assert 60 in indices and not any(20 <= n < 60 for n in indices)
    assert link.buffer.stats().frames_skipped > 0


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 5)), max_size=20))
def test_nack_schedule_asks_at_once_re_asks_and_gives_up_at_the_deadline(gaps: list[tuple[int, int]]) -> None:
    schedule = NackSchedule(deadline_s=0.25)
    asked: dict[int, list[float]] = {}
    seq = 0
    now = 0.0
    for skip, count in gaps:
        seq += skip
        schedule.missing(seq, seq + count, now)
        for _ in range(10):
            for s in schedule.due(now):
                asked.setdefault(s, []).append(now)
            for s in schedule.expired(now):
                assert now - min(asked[s]) >= 0.25 - 1e-9
            now += 0.013
        seq += count
    for times in asked.values():
        assert all(b - a >= MIN_RENACK_S - 1e-9 for a, b in itertools.pairwise(times))
    assert len(schedule) <= schedule.max_tracked


def test_keyframe_requests_go_at_once_then_at_most_once_per_interval_until_a_keyframe() -> None:
    requests = KeyframeRequests(0.3)
    assert not requests.due(0.0)
    requests.want()
    sent = [t / 100 for t in range(100) if requests.due(t / 100)]
    assert sent == [0.0, 0.3, 0.6, 0.9]
    requests.got_keyframe()
    assert not requests.due(5.0)

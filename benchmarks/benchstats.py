"""The benchmark's arithmetic, kept pure: per-SSRC packet counts, window deltas, delivery, percentiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIDEO_HZ = 90_000
AUDIO_HZ = 48_000
AUDIO_PACKETS_PER_S = 50.0  # 20 ms Opus frames
LAG_TOLERANCE_S = 0.2  # a stream whose media time falls further behind wall time is "late"


class StreamCount:
    """Running counters of one received RTP stream (one SSRC), updated once per packet."""

    __slots__ = ("bytes", "count", "ext_seq", "ext_ts", "frames", "last_seq", "last_ts", "video")

    def __init__(self, video: bool, seq: int, ts: int) -> None:
        self.video = video
        self.count = 0
        self.bytes = 0
        self.last_seq = (seq - 1) & 0xFFFF
        self.ext_seq = -1  # extended sequence number relative to the first packet
        self.last_ts = ts
        self.ext_ts = 0
        self.frames = 0  # distinct timestamps seen after the first (frames for video, packets for audio)

    def add(self, seq: int, ts: int, size: int) -> None:
        self.count += 1
        self.bytes += size
        delta = (seq - self.last_seq) & 0xFFFF
        if delta < 0x8000:  # newer (older ones are reordered or resent: counted, not advanced)
            self.ext_seq += delta
            self.last_seq = seq
            step = (ts - self.last_ts) & 0xFFFFFFFF
            if 0 < step < 0x80000000:
                self.ext_ts += step
                self.last_ts = ts
                self.frames += 1

    def mark(self) -> Mark:
        return (self.count, self.bytes, self.ext_seq, self.ext_ts, self.frames)


Mark = tuple[int, int, int, int, int]  # count, bytes, extended seq, extended timestamp, frames


@dataclass(frozen=True)
class StreamWindow:
    """What one SSRC delivered between two marks ``wall_s`` apart."""

    video: bool
    received: int
    bytes: int
    seq_span: int  # packets the sender numbered in the window
    media_s: float  # media time the window's packets cover
    frames: int  # frames (distinct timestamps) seen in the window
    frame_rate: float  # frames per second the source makes (video fps; 50 for 20 ms audio)
    wall_s: float

    @property
    def expected(self) -> float:
        """Packets a viewer should have had.

        Three ways to lose packets, all counted: gaps in the sequence numbers (lost on the way),
        frames the server never numbered for this viewer (dropped before packetising: fewer
        timestamps than the source's frame rate gives for the media time covered), and a stream
        that runs late (its media time advances slower than the wall clock).
        """
        if self.seq_span <= 0:
            return 0.0
        expected = float(self.seq_span)
        if self.media_s > 0 and self.frames > 0:
            wanted_frames = self.media_s * self.frame_rate
            if self.frames < wanted_frames:
                expected *= wanted_frames / self.frames
        if self.media_s > 0 and self.media_s < self.wall_s - LAG_TOLERANCE_S:
            expected *= self.wall_s / self.media_s
        return expected


def window(video: bool, start: Mark, end: Mark, wall_s: float, fps: float = 30.0) -> StreamWindow:
    hz = VIDEO_HZ if video else AUDIO_HZ
    return StreamWindow(
        video=video,
        received=end[0] - start[0],
        bytes=end[1] - start[1],
        seq_span=end[2] - start[2],
        media_s=(end[3] - start[3]) / hz,
        frames=end[4] - start[4],
        frame_rate=fps if video else AUDIO_PACKETS_PER_S,
        wall_s=wall_s,
    )


def delivered_ratio(windows: list[StreamWindow], reference_rate: float | None = None) -> float:
    """Packets received over packets expected, for one viewer (all its SSRCs).

    A viewer that got nothing at all is measured against ``reference_rate`` (packets/s the
    median viewer was sent), so it counts as 0 rather than disappearing from the statistics.
    """
    received = sum(w.received for w in windows)
    expected = sum(w.expected for w in windows)
    if expected <= 0:
        if reference_rate:
            return 0.0
        return 1.0 if received == 0 else 0.0
    return min(1.0, received / expected)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``th percentile (0-100), or None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def modular_latency_ms(now_ms: int, stamped: int, bits: int = 16) -> int:
    """Latency from a capture time stamped modulo 2**bits milliseconds into the picture."""
    return (now_ms - stamped) % (1 << bits)

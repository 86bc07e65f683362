"""The benchmark's delivery arithmetic: loss, frames never sent, and a stream running late all count."""

from __future__ import annotations

import pytest

from benchmarks.benchstats import StreamCount, delivered_ratio, modular_latency_ms, percentile, window


def _feed(
    count: StreamCount,
    frames: range,
    packets_per_frame: int,
    *,
    skip_frames: set[int] = frozenset(),
    lose: set[int] = frozenset(),
    seq0: int = 65000,
) -> None:
    """Frames of a 30 fps stream; skipped frames are never numbered, lost packets are numbered but not seen."""
    seq = seq0
    for n in frames:
        if n in skip_frames:
            continue
        for _ in range(packets_per_frame):
            if seq not in lose:
                count.add(seq & 0xFFFF, (n * 3000) & 0xFFFFFFFF, 1200)
            seq += 1


def _ratio(skip: set[int] = frozenset(), lose: set[int] = frozenset(), wall_s: float = 10.0) -> float:
    count = StreamCount(True, 65000, 0)
    _feed(count, range(0, 1), 5)
    start = count.mark()
    _feed(count, range(1, 301), 5, skip_frames=skip, lose=lose, seq0=65005)
    return delivered_ratio([window(True, start, count.mark(), wall_s)])


def test_a_complete_stream_is_fully_delivered_across_a_sequence_wrap() -> None:
    assert _ratio() == pytest.approx(1.0)


def test_lost_packets_count() -> None:
    assert _ratio(lose={65010, 65011, 65100}) == pytest.approx(1 - 3 / 1500, abs=1e-4)


def test_frames_the_server_never_sent_count_although_sequence_numbers_have_no_gap() -> None:
    assert _ratio(skip=set(range(100, 130))) == pytest.approx(0.9, abs=0.005)


def test_a_stream_running_late_counts() -> None:
    assert _ratio(wall_s=12.0) == pytest.approx(10 / 12, abs=0.005)


def test_a_viewer_that_got_nothing_is_zero() -> None:
    assert delivered_ratio([], reference_rate=1.0) == 0.0


def test_latency_from_a_16_bit_millisecond_stamp_wraps() -> None:
    assert modular_latency_ms(65_600, 65_500) == 100
    assert modular_latency_ms(65_536 + 50, 65_500) == 86


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0

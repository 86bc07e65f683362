"""SourceClock: the publisher's frame spacing, anchored to the earliest arrivals (transcode/timing.py)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from transcode.timing import HZ, WRAP, SourceClock

FRAME = HZ // 30  # 3000 ticks


def _run(clock: SourceClock, base: int, delays: list[int], *, start: int = 10 * HZ, drift_ppm: int = 0) -> list[int]:
    """Frames n = 0.. taken every FRAME ticks of the source (base + n * FRAME, wrapping), each
    arriving delays[n] ticks after it was taken (on the server's clock, which runs drift_ppm
    faster than the source's)."""
    out = []
    for n, delay in enumerate(delays):
        taken = start + n * FRAME + n * FRAME * drift_ppm // 1_000_000
        out.append(clock.stamp((base + n * FRAME) % WRAP, taken + delay))
    return out


jitter = st.lists(st.integers(0, 40 * 90), min_size=2, max_size=300)  # 0-40 ms of network delay


@given(st.integers(0, WRAP - 1), jitter)
def test_a_steady_source_keeps_its_spacing_whatever_the_jitter(base: int, delays: list[int]) -> None:
    """From the frame after the earliest arrival so far on, every frame is exactly a frame after
    the one before (the earliest one itself may be pushed a tick on, never to repeat a stamp)."""
    stamps = _run(SourceClock(), base, delays)
    fastest = min(range(len(delays)), key=lambda n: (delays[n], n))
    for n in range(1, len(stamps)):
        assert stamps[n] > stamps[n - 1]
        if n > fastest + 1 and min(delays[: n + 1]) == delays[fastest]:
            assert stamps[n] - stamps[n - 1] == FRAME, (n, fastest)


@given(st.integers(0, WRAP - 1), jitter, st.integers(-500, 500))
def test_a_frame_is_never_stamped_after_it_arrived_or_long_before(base: int, delays: list[int], ppm: int) -> None:
    clock = SourceClock()
    start = 10 * HZ
    previous = -1
    for n, delay in enumerate(delays):
        arrived = start + n * FRAME + n * FRAME * ppm // 1_000_000 + delay
        stamp = clock.stamp((base + n * FRAME) % WRAP, arrived)
        assert stamp <= max(arrived, previous + 1)  # (a stamp is never repeated)
        previous = stamp
        # Behind its arrival by the jitter of the moment, bounded: the path's delay (<= 40 ms)
        # plus the drift a window can gather before it is slewed away.
        assert arrived - stamp <= 40 * 90 + clock.max_lag + 2 * clock.window * abs(ppm) // 1_000_000 + clock.window


@settings(max_examples=50)
@given(st.integers(0, WRAP - 1), st.sampled_from([-300, -100, 100, 300]))
def test_clock_drift_does_not_pile_up(base: int, ppm: int) -> None:
    """Ten minutes of a source whose clock runs off the server's by up to 300 ppm (54 ms per
    minute at 300): the stamps stay within max_lag plus a window's drift of the arrivals."""
    clock = SourceClock()
    delays = [0] * (30 * 600)
    stamps = _run(clock, base, delays, drift_ppm=ppm)
    for n in range(0, len(stamps), 97):
        arrived = 10 * HZ + n * FRAME + n * FRAME * ppm // 1_000_000
        assert 0 <= arrived - stamps[n] <= clock.max_lag + clock.window * abs(ppm) // 1_000_000 + 2 * FRAME
    gaps = {stamps[n] - stamps[n - 1] for n in range(1, len(stamps))}
    assert max(gaps) <= FRAME + clock.slew  # the correction is spread, never a jump


@given(st.integers(0, WRAP - 1), st.integers(0, WRAP - 1), st.integers(2, 60))
def test_a_new_rtp_base_anchors_afresh_and_time_goes_on(first: int, second: int, frames: int) -> None:
    clock = SourceClock()
    a = _run(clock, first, [0] * frames)
    later = 10 * HZ + frames * FRAME + 2 * HZ  # two seconds without frames, then a new publisher
    b = [clock.stamp((second + n * FRAME) % WRAP, later + n * FRAME) for n in range(frames)]
    assert b[0] > a[-1]
    assert 0 <= later - b[0] <= HZ or b[0] == a[-1] + 1
    if clock.resyncs:  # (a new base that happens to continue the old one within a second is not a jump)
        assert b[0] == later
        assert all(y - x == FRAME for x, y in itertools.pairwise(b))


def test_the_same_source_timestamp_gets_the_same_stamp() -> None:
    """The forwarded copy of a frame (at arrival) and its decoded copy (later) share one stamp."""
    clock = SourceClock()
    first = clock.stamp(1000, 50_000)
    nxt = clock.stamp(1000 + FRAME, 50_000 + FRAME + 200)
    assert clock.stamp(1000, 50_000 + 2 * FRAME) == first  # decoded, two frames later
    assert clock.stamp(1000 + FRAME, 50_000 + 3 * FRAME) == nxt
    assert nxt == first + FRAME


def test_a_late_burst_after_a_stall_keeps_the_source_spacing() -> None:
    """300 ms without packets, then the frames of those 300 ms at once: the stamps keep the
    camera's spacing (the viewers' jitter buffers absorb the stall) and the anchor does not move."""
    clock = SourceClock()
    stamps = [clock.stamp(n * FRAME, 100_000 + n * FRAME) for n in range(30)]
    burst_at = 100_000 + 39 * FRAME
    stamps += [clock.stamp(n * FRAME, burst_at) for n in range(30, 40)]
    stamps += [clock.stamp(n * FRAME, 100_000 + n * FRAME) for n in range(40, 60)]
    assert all(y - x == FRAME for x, y in itertools.pairwise(stamps))
    assert clock.resyncs == 0


def test_wrapping_rtp_timestamps_do_not_resync() -> None:
    clock = SourceClock()
    base = WRAP - 10 * FRAME
    stamps = _run(clock, base, [0] * 30)
    assert all(y - x == FRAME for x, y in itertools.pairwise(stamps))
    assert clock.resyncs == 0


def test_frames_without_a_time_of_their_own_are_stamped_on_arrival() -> None:
    clock = SourceClock()
    assert [clock.stamp(None, t) for t in (10, 20, 20, 35)] == [10, 20, 21, 35]

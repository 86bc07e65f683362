"""The LL-HLS cut rules, window and blocking-request resolution (relay/hls/timeline.py)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.hls.timeline import Cut, TrackTimeline

HZ = 90_000
PART_S = 0.333
SEGMENT_S = 2.0
TD = 3


def video_timeline(window: int = 6) -> TrackTimeline:
    return TrackTimeline(
        timescale=HZ, part_s=PART_S, grid_s=SEGMENT_S, early_s=SEGMENT_S / 4, target_duration_s=TD, window=window
    )


# A source: frame gaps of 20-45 ms (jitter around 30 fps), keyframes where the packager asked
# for them (the first frame at or after each grid point minus the lead) and at random (viewers
# joining WebRTC force IDRs), some of which are missing (a keyframe request coalesced away).
@st.composite
def sources(draw: st.DrawFn) -> list[tuple[int, bool]]:
    gaps = draw(st.lists(st.integers(20, 45), min_size=1, max_size=700))
    random_keys = draw(st.sets(st.integers(0, len(gaps)), max_size=20))
    missed_grid = draw(st.sets(st.integers(0, 40), max_size=5))
    start = draw(st.integers(0, 10 * HZ))
    samples = []
    pts = start
    next_grid = 0
    for i, gap in enumerate([0, *gaps]):
        pts += gap * HZ // 1000
        key = i == 0 or i in random_keys
        if pts >= next_grid - HZ // 20:
            cell = (pts + HZ // 20) // (2 * HZ)
            if cell not in missed_grid:
                key = True
            next_grid = (cell + 1) * 2 * HZ
        samples.append((pts, key))
    return samples


def feed(timeline: TrackTimeline, samples: list[tuple[int, bool]]) -> list[Cut]:
    cuts = []
    for pts, key in samples:
        cut = timeline.on_sample(pts, key)
        if cut is not None:
            cuts.append(cut)
    return cuts


@settings(max_examples=150, deadline=None)
@given(sources())
def test_parts_tile_their_segments_and_segments_tile_the_timeline(samples: list[tuple[int, bool]]) -> None:
    timeline = video_timeline(window=1000)
    feed(timeline, samples)
    segments = timeline.segments
    assert segments[0].start == samples[0][0]
    for before, after in itertools.pairwise(segments):
        assert before.complete
        assert before.start + (before.duration or 0) == after.start
        assert after.msn == before.msn + 1
    for segment in segments:
        at = segment.start
        for index, part in enumerate(segment.parts):
            assert (part.msn, part.number, part.start) == (segment.msn, index, at)
            at += part.duration
        if segment.complete:
            assert at == segment.start + (segment.duration or 0)
        assert not segment.parts or segment.parts[0].independent == segment.independent


@settings(max_examples=150, deadline=None)
@given(sources())
def test_no_part_outgrows_part_target_and_no_segment_outgrows_target_duration(samples: list[tuple[int, bool]]) -> None:
    timeline = video_timeline(window=1000)
    feed(timeline, samples)
    for segment in timeline.segments:
        if segment.complete:
            assert (segment.duration or 0) <= TD * HZ
        for part in segment.parts:
            assert 0 < part.duration <= timeline.part_target


@settings(max_examples=150, deadline=None)
@given(sources())
def test_segments_begin_with_keyframes_and_follow_the_grid(samples: list[tuple[int, bool]]) -> None:
    keys = {pts for pts, key in samples if key}
    timeline = video_timeline(window=1000)
    feed(timeline, samples)
    for segment in timeline.segments[1:]:
        assert segment.independent == (segment.start in keys)
        if segment.independent:
            # It starts where the grid said: at or after the cell boundary minus the early margin.
            cell_start = (segment.start + HZ // 2) // (2 * HZ) * 2 * HZ
            assert segment.start >= cell_start - HZ // 2
    complete = [s for s in timeline.segments if s.complete and s.independent]
    # With keyframes on the grid, most segments are one grid step long.
    if len(complete) > 4:
        near = [s for s in complete[1:] if abs((s.duration or 0) - 2 * HZ) <= HZ // 2]
        assert len(near) >= len(complete[1:]) // 2


@given(sources())
def test_two_rungs_fed_the_same_frames_cut_at_the_same_pts(samples: list[tuple[int, bool]]) -> None:
    a, b = video_timeline(), video_timeline()
    feed(a, samples)
    feed(b, samples)
    assert [(s.msn, s.start, s.duration) for s in a.segments] == [(s.msn, s.start, s.duration) for s in b.segments]


@settings(max_examples=200, deadline=None)
@given(sources(), st.integers(3, 8))
def test_the_window_keeps_the_newest_segments_and_says_which_left(samples: list[tuple[int, bool]], window: int) -> None:
    timeline = video_timeline(window=window)
    evicted = [msn for cut in feed(timeline, samples) for msn in cut.evicted]
    complete = [s for s in timeline.segments if s.complete]
    assert len(complete) <= window
    assert evicted == list(range(len(evicted)))  # oldest first, each once
    msns = [s.msn for s in timeline.segments]
    assert msns == list(range(len(evicted), len(evicted) + len(msns)))


@settings(max_examples=200, deadline=None)
@given(sources(), st.integers(-1, 400), st.one_of(st.none(), st.integers(-1, 12)))
def test_blocking_requests_resolve_as_the_spec_says(
    samples: list[tuple[int, bool]], msn: int, part: int | None
) -> None:
    timeline = video_timeline(window=4)
    feed(timeline, samples)
    segments = {s.msn: s for s in timeline.segments}
    newest = max(segments)
    first = min(segments)
    state = timeline.resolve(msn, part)
    if msn < 0 or msn > newest + 2 or (part is not None and part < 0):
        assert state == "bad"
    elif msn < first:
        assert state == "ready"
    elif msn not in segments:
        assert state == "wait"
    elif part is None:
        assert state == ("ready" if segments[msn].complete else "wait")
    elif part < len(segments[msn].parts):
        assert state == "ready"
    elif not segments[msn].complete:
        assert state == "wait"
    elif part == len(segments[msn].parts):
        following = segments.get(msn + 1)
        assert state == ("ready" if following is not None and following.parts else "wait")
    else:
        assert state == "bad"


def test_a_preload_hinted_part_is_waited_for_then_ready() -> None:
    timeline = video_timeline()
    pts = 0
    timeline.on_sample(pts, True)
    hint = timeline.next_part()
    assert hint == (0, 0)
    assert timeline.part_state(*hint) == "wait"
    while timeline.part_state(0, 0) == "wait":
        pts += 3000
        timeline.on_sample(pts, False)
    assert timeline.part_state(0, 0) == "ready"
    assert timeline.part_state(0, 40) == "gone"
    assert timeline.segment_state(0) == "wait"
    assert timeline.segment_state(5) == "gone"


def test_end_closes_the_segment_and_the_next_one_is_a_discontinuity() -> None:
    timeline = video_timeline()
    for i in range(40):
        timeline.on_sample(i * 3000, i == 0)
    cut = timeline.end(40 * 3000)
    assert cut is not None and cut.segment is not None
    assert cut.segment.duration == 40 * 3000
    assert timeline.next_part() is None
    assert timeline.on_sample(5 * HZ, True) is None
    assert timeline.segments[-1].discontinuity
    assert timeline.on_sample(5 * HZ + 3000, False, new_map=True) is not None  # a new init: a new segment
    assert timeline.segments[-1].discontinuity and timeline.map_id == 1


def test_samples_that_do_not_move_forward_close_nothing() -> None:
    timeline = video_timeline()
    timeline.on_sample(1000, True)
    for _ in range(50):
        assert timeline.on_sample(1000, False) is None
    assert timeline.next_part() == (0, 0)


def test_audio_segments_cut_on_the_grid_without_keyframe_hunting() -> None:
    timeline = TrackTimeline(
        timescale=48_000, part_s=PART_S, grid_s=SEGMENT_S, early_s=0, target_duration_s=TD, window=6
    )
    for i in range(600):
        timeline.on_sample(1024 * i + 500, True)
    starts = [s.start for s in timeline.segments[1:]]
    assert all((start - 500) % 1024 == 0 for start in starts)
    assert all(start % 96_000 < 1024 for start in starts)  # the first AAC frame of each grid cell

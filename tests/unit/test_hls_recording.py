"""A recording's index (relay/hls/recording.py) and its VOD and clip playlists (vod.py): written as
the recorder writes it, cut anywhere (a SIGKILL), read back, and played as ``m3u8`` reads it."""

from __future__ import annotations

import json
from datetime import datetime

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import BadRequest
from relay.hls.dateranges import CARD_CLASS, CardRanges
from relay.hls.playlist import target_duration
from relay.hls.recording import (
    CardLine,
    RecordedPart,
    Stored,
    TrackInfo,
    card_line,
    end_line,
    expired,
    header_line,
    init_line,
    parse_index,
    part_line,
    segment_line,
    track_line,
)
from relay.hls.timeline import TrackTimeline
from relay.hls.vod import MAX_CLIP_S, Clip, clip_window, multivariant, vod_playlist

HZ = 90_000
WALL0 = 1_795_000_000.0
FRAME = 3000  # 30 fps


def record(
    frames: int, *, key_every: int = 60, first_pts: int = 0, cards: list[tuple[int, str, str]] | None = None
) -> str:
    """The index a recorder writes for ``frames`` video frames (and card events at frame numbers)."""
    timeline = TrackTimeline(
        timescale=HZ, part_s=0.333, grid_s=2.0, early_s=0.5, target_duration_s=target_duration(2.0), window=6
    )
    text = header_line("20261202T120000Z-abcd", "shop", wall_at_zero=WALL0, started_at=WALL0 + 1)
    text += track_line(TrackInfo("480p", "video", HZ, 640, 360, "avc1.42c01e")) + init_line("480p", 0)
    events = list(enumerate(cards or [], 1))
    for i in range(frames):
        pts = first_pts + i * FRAME
        for seq, (frame, action, card_id) in events:
            if frame == i:
                card = json.dumps({"id": card_id, "title": card_id.title()})
                text += card_line(CardLine(seq, action, card_id, card, pts // 90))
        cut = timeline.on_sample(pts, i % key_every == 0)
        text += _cut_lines(timeline, cut)
    text += _cut_lines(timeline, timeline.end(first_pts + frames * FRAME))
    return text + end_line(WALL0 + 100, "the publisher left")


def _cut_lines(timeline: TrackTimeline, cut: object) -> str:
    if cut is None:
        return ""
    part = cut.part  # type: ignore[attr-defined]
    segment = cut.segment or timeline.segment(part.msn)  # type: ignore[attr-defined]
    size = part.duration // 30 + 7 * part.number + 1
    recorded = RecordedPart(part.number, part.start, part.duration, size, part.independent)
    text = part_line("480p", part.msn, segment.map_id, segment.discontinuity, recorded)
    if cut.segment is not None:  # type: ignore[attr-defined]
        text += segment_line("480p", cut.segment.msn, cut.segment.duration)  # type: ignore[attr-defined]
    return text


def _whole(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def seconds(date: str) -> float:
    return datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp()


@settings(max_examples=60, deadline=None)
@given(st.integers(30, 900), st.integers(0, 3_000_000))
def test_a_whole_recording_is_a_vod_playlist_that_ends_and_covers_every_frame(frames: int, first_pts: int) -> None:
    recording = parse_index(record(frames, first_pts=first_pts).splitlines())
    assert recording is not None and recording.ended_at is not None
    assert recording.state(active=False) == "complete" and recording.state(active=True) == "recording"
    playlist = m3u8.loads(vod_playlist(recording, "480p", final=True))
    assert playlist.playlist_type == "vod" and playlist.is_endlist
    assert playlist.segment_map[0].uri == "init0.mp4"
    total = sum(s.duration for s in playlist.segments)
    assert total == pytest.approx(frames * FRAME / HZ, abs=1e-3)
    assert all(s.duration <= playlist.target_duration for s in playlist.segments)
    assert all(s.byterange is None for s in playlist.segments), "every segment complete: whole files"
    dates = [s.program_date_time.timestamp() for s in playlist.segments]
    assert dates[0] == pytest.approx(WALL0 + first_pts / HZ, abs=1e-3)
    assert dates == sorted(dates)
    span = recording.media_span()
    assert span is not None and span[1] - span[0] == pytest.approx(total, abs=1e-3)


@settings(max_examples=150, deadline=None)
@given(st.integers(30, 600), st.floats(0, 1))
def test_an_index_cut_anywhere_plays_every_part_written_before_the_cut(frames: int, where: float) -> None:
    text = record(frames)
    cut_at = int(len(text) * where)
    cut = text[:cut_at]  # a SIGKILL between any two bytes of the index
    recording = parse_index(cut.splitlines())
    if recording is None:
        assert "\n" not in cut, "only an index without its first line is unreadable"
        return
    full = parse_index(text.splitlines())
    assert full is not None
    if "480p" not in recording.tracks:
        assert '"type":"part"' not in cut, "no part before its track"
        return
    playlist = m3u8.loads(vod_playlist(recording, "480p", final=True))
    assert playlist.is_endlist
    whole = {s.msn: s for s in full.tracks["480p"].segments}
    read = {s.msn: s for s in recording.tracks["480p"].segments}
    # The parts whose whole line made it: a prefix of the full recording's parts.
    written = [line for line in cut.splitlines() if '"type":"part"' in line and _whole(line)]
    listed = 0.0
    for segment in playlist.segments:
        msn = int(segment.uri.split(".")[0])
        original = whole[msn]
        if segment.byterange is None:
            assert segment.duration == pytest.approx(original.recorded_duration / HZ, abs=1e-4)
        else:  # cut short: a prefix of its parts, as bytes of its file from offset 0
            length, offset = (int(x) for x in segment.byterange.split("@"))
            assert offset == 0
            prefix = read[msn].parts
            assert not read[msn].complete and prefix == original.parts[: len(prefix)]
            assert length == sum(p.size for p in prefix)
            assert segment.duration == pytest.approx(sum(p.duration for p in prefix) / HZ, abs=1e-4)
        listed += segment.duration
    assert listed == pytest.approx(sum(json.loads(line)["dur"] for line in written) / HZ, abs=1e-3)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 599), st.sampled_from(["show", "hide", "update", "delete"]), st.sampled_from("abc")),
        max_size=12,
    ).map(lambda events: sorted(events, key=lambda e: e[0]))
)
def test_cards_replay_at_the_dates_they_had_live(cards: list[tuple[int, str, str]]) -> None:
    recording = parse_index(record(600, cards=cards).splitlines())
    assert recording is not None
    playlist = m3u8.loads(vod_playlist(recording, "480p", final=True))
    replayed = {d.id: d for s in playlist.segments for d in s.dateranges}
    # Live: the same events through the live playlist's CardRanges.
    live = CardRanges()
    for seq, (frame, action, card_id) in enumerate(cards, 1):
        live.apply(seq, action, card_id, json.dumps({"id": card_id, "title": card_id.title()}), frame * FRAME // 90)
    expected = live.ranges(wall_at_zero=WALL0, since_ms=0)
    assert sorted(replayed) == sorted(r.id for r in expected)
    for r in expected:
        d = replayed[r.id]
        assert d.class_ == CARD_CLASS
        assert seconds(d.start_date) == pytest.approx(r.start, abs=1e-3)
        assert (d.end_date is None) == (r.end is None)


@settings(max_examples=150, deadline=None)
@given(st.integers(200, 900), st.floats(0, 40), st.floats(0.5, 12))
def test_a_clip_starts_on_a_keyframe_at_or_before_its_start_and_lasts_its_duration(
    frames: int, start: float, duration: float
) -> None:
    recording = parse_index(record(frames).splitlines())
    assert recording is not None
    length = frames * FRAME / HZ
    if start >= length:
        with pytest.raises(BadRequest):
            clip_window(recording, Clip(start, duration))
        return
    window = clip_window(recording, Clip(start, duration))
    assert window.start <= start + 1e-9 and start - window.start <= target_duration(2.0)
    playlist = m3u8.loads(vod_playlist(recording, "480p", final=True, window=window))
    assert playlist.is_endlist and playlist.segments
    first = playlist.segments[0]
    assert first.program_date_time.timestamp() == pytest.approx(WALL0 + window.start, abs=1e-3)
    listed = sum(s.duration for s in playlist.segments)
    available = length - window.start
    assert listed <= duration + 0.5 + 1e-6, "at most one part past the end"
    assert listed >= min(duration, available) - 1e-4  # EXTINF has 5 decimals
    master = m3u8.loads(multivariant(recording, leaf="index.m3u8?start=1&duration=2", window=window))
    assert [p.uri for p in master.playlists] == ["480p/index.m3u8?start=1&duration=2"]
    assert master.playlists[0].stream_info.resolution == (640, 360)


@pytest.mark.parametrize(
    "clip", [Clip(-1, 5), Clip(0, 0), Clip(0, -2), Clip(0, MAX_CLIP_S + 1), Clip(10_000, 5), Clip(float("nan"), 5)]
)
def test_bad_clip_ranges_are_refused(clip: Clip) -> None:
    recording = parse_index(record(300).splitlines())
    assert recording is not None
    with pytest.raises(BadRequest):
        clip_window(recording, clip)


def test_garbage_and_out_of_order_lines_are_skipped() -> None:
    text = record(120)
    lines = text.splitlines()
    noisy = [lines[0], "not json", "[1, 2]", '{"type": "part"}', *lines[1:]]
    assert '"type":"part"' in noisy[6]
    noisy.insert(7, noisy[6])  # a part line twice: the second is not the next part
    recording = parse_index(noisy)
    clean = parse_index(lines)
    assert recording is not None and clean is not None
    assert vod_playlist(recording, "480p", final=True) == vod_playlist(clean, "480p", final=True)
    assert parse_index(["{}", *lines[1:]]) is None


def test_a_recording_begun_mid_segment_starts_at_the_next_segment() -> None:
    lines = record(300).splitlines()
    parts = [i for i, line in enumerate(lines) if '"type":"part"' in line]
    # Drop the first segment's first part: the recording began after it.
    recording = parse_index(lines[: parts[0]] + lines[parts[0] + 1 :])
    assert recording is not None
    playlist = m3u8.loads(vod_playlist(recording, "480p", final=True))
    assert playlist.segments[0].uri == "1.m4s"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1e6), st.integers(0, 10**9)), max_size=30),
    st.floats(1, 1e6),
    st.integers(0, 5 * 10**9),
)
def test_retention_deletes_the_too_old_then_the_oldest_until_under_the_limit(
    items: list[tuple[float, int]], max_age: float, max_bytes: int
) -> None:
    now = 2e6
    stored = [Stored(f"r{i}", ended, size) for i, (ended, size) in enumerate(items)]
    doomed = set(expired(stored, now=now, max_age_s=max_age, max_bytes=max_bytes))
    kept = [s for s in stored if s.key not in doomed]
    assert all(now - s.ended_at <= max_age for s in kept)
    assert sum(s.size for s in kept) <= max_bytes
    young_deleted = [s for s in stored if s.key in doomed and now - s.ended_at <= max_age]
    if young_deleted:  # only for size, and only ones older than every young one kept
        newest_deleted = max(s.ended_at for s in young_deleted)
        assert all(s.ended_at >= newest_deleted for s in kept)

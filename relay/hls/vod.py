"""The playlists of a recording: VOD (or EVENT, while it is being written) and clips by time.

Pure: a ``Recording`` (``recording.py``) in, playlist text out. What the replay relies on:
- every segment carries EXT-X-PROGRAM-DATE-TIME from the recording's own ``wall_at_zero``, and
  the cards are EXT-X-DATERANGEs built by the same ``CardRanges`` as the live playlists, so a
  replayed card starts at the very date (the very frame) it started at live;
- a segment whose ``segment`` line never came (the server was killed while writing it) is
  listed as the byte range of its recorded parts, which are a prefix of its file; so is the
  last segment of a clip, cut at the first part boundary at or after the clip's end;
- a clip starts at a keyframe: the start of the segment (on the reference rung) that holds the
  asked-for start, and lasts the asked-for duration from there (up to a part longer);
- EXT-X-DISCONTINUITY where the media does not follow on (a new muxer, a gap left by a segment
  cut short), so a player resets its timeline there instead of stalling.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from relay.errors import BadRequest
from relay.hls.dateranges import CardRanges
from relay.hls.playlist import AAC_LC, VERSION, DateRange, iso_date
from relay.hls.recording import RecordedSegment, RecordedTrack, Recording, init_file, segment_file

MAX_CLIP_S = 600.0  # the longest clip served (a product's moment, not a second copy of the replay)


class Clip(NamedTuple):
    """A time range of a recording: seconds from its first playable moment, and a length."""

    start_s: float
    duration_s: float


class Window(NamedTuple):
    """Media seconds [start, end) on the stream's clock."""

    start: float
    end: float


def clip_window(recording: Recording, clip: Clip) -> Window:
    """Where a clip is, on the media clock; BadRequest for a range the recording does not hold."""
    span = recording.media_span()
    reference = recording.reference()
    if span is None or reference is None:
        raise BadRequest(f"recording {recording.id} holds no media yet")
    if not (math.isfinite(clip.start_s) and math.isfinite(clip.duration_s)):
        raise BadRequest("start and duration must be numbers of seconds")
    if clip.start_s < 0 or clip.duration_s <= 0 or clip.duration_s > MAX_CLIP_S:
        raise BadRequest(f"a clip needs start >= 0 and 0 < duration <= {MAX_CLIP_S:.0f} seconds")
    length = span[1] - span[0]
    if clip.start_s >= length:
        raise BadRequest(f"start={clip.start_s:g} is past the recording's end ({length:.1f} s)")
    at = span[0] + clip.start_s
    ts = reference.info.timescale
    keyframe = span[0]
    for segment in reference.playable():
        if segment.start / ts > at + 1e-9:
            break
        if segment.parts[0].independent or reference.info.kind != "video":
            keyframe = segment.start / ts
    return Window(keyframe, keyframe + clip.duration_s)


def _selected(track: RecordedTrack, window: Window | None) -> list[tuple[RecordedSegment, int]]:
    """The segments of ``track`` to list, each with how many of its recorded parts."""
    out = []
    ts = track.info.timescale
    for segment in track.playable():
        if window is None:
            out.append((segment, len(segment.parts)))
            continue
        t0, t1 = round(window.start * ts), round(window.end * ts)
        if segment.end <= t0 or segment.start >= t1:
            continue
        count = sum(1 for p in segment.parts if p.start < t1)
        out.append((segment, count))
    return out


def _dateranges(recording: Recording, window: Window | None) -> list[DateRange]:
    ranges = CardRanges(keep_closed=len(recording.cards) + 1)
    for card in recording.cards:
        ranges.apply(card.seq, card.action, card.card_id, card.card_json, card.pts_ms)
    listed = ranges.ranges(wall_at_zero=recording.wall_at_zero, since_ms=0)
    if window is None:
        return listed
    w0, w1 = recording.wall_at_zero + window.start, recording.wall_at_zero + window.end
    return [d for d in listed if d.start < w1 and (d.end is None or d.end >= w0)]


def vod_playlist(recording: Recording, track_name: str, *, final: bool, window: Window | None = None) -> str:
    """One track's playlist of the whole recording (or of ``window``): VOD with EXT-X-ENDLIST
    once ``final`` (nobody writes it any more, or it is a clip), EVENT while it grows."""
    track = recording.tracks[track_name]
    ts = track.info.timescale
    selected = _selected(track, window)
    durations = [_duration(s, n, ts) for s, n in selected]
    target = max(1, math.ceil(max(durations, default=1.0)))
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if final else 'EVENT'}",
        f"#EXT-X-MEDIA-SEQUENCE:{selected[0][0].msn if selected else 0}",
    ]
    lines.extend(d.tag() for d in _dateranges(recording, window))
    current_map: int | None = None
    previous_end: int | None = None
    for (segment, count), duration in zip(selected, durations, strict=True):
        follows = previous_end is not None and previous_end == segment.start and not segment.discontinuity
        if previous_end is not None and not follows:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.map_id != current_map:
            lines.append(f'#EXT-X-MAP:URI="{init_file(segment.map_id)}"')
            current_map = segment.map_id
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso_date(recording.wall_at_zero + segment.start / ts)}")
        lines.append(f"#EXTINF:{duration:.5f},")
        whole = segment.complete and count == len(segment.parts)
        if not whole:
            lines.append(f"#EXT-X-BYTERANGE:{sum(p.size for p in segment.parts[:count])}@0")
        lines.append(segment_file(segment.msn))
        previous_end = segment.end if whole else segment.start + sum(p.duration for p in segment.parts[:count])
    if final:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _duration(segment: RecordedSegment, count: int, timescale: int) -> float:
    if segment.complete and count == len(segment.parts):
        return segment.recorded_duration / timescale
    return sum(p.duration for p in segment.parts[:count]) / timescale


def multivariant(recording: Recording, *, leaf: str, window: Window | None = None) -> str:
    """The recording's multivariant playlist: each recorded rung, highest first, and its audio.
    ``leaf`` is each media playlist's name with its query (a clip's range)."""
    audio = next((t for t in recording.tracks.values() if t.info.kind == "audio" and t.playable()), None)
    audio_bps = _peak_bps(audio, window) if audio is not None else 0
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",'
            f'URI="{audio.info.name}/{leaf}"'
        )
    for track in recording.video_tracks():
        info = track.info
        codecs = info.codecs + (f",{AAC_LC}" if audio is not None else "")
        audio_attr = ',AUDIO="aac"' if audio is not None else ""
        bandwidth = _peak_bps(track, window) + audio_bps
        lines.append(
            f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={info.width}x{info.height},CODECS="{codecs}"{audio_attr}'
        )
        lines.append(f"{info.name}/{leaf}")
    return "\n".join(lines) + "\n"


def _peak_bps(track: RecordedTrack, window: Window | None) -> int:
    """BANDWIDTH: the highest bit rate of any listed segment (what the recording really holds)."""
    ts = track.info.timescale
    peak = 0.0
    for segment, count in _selected(track, window):
        parts = segment.parts[:count]
        ticks = sum(p.duration for p in parts)
        if ticks > 0:
            peak = max(peak, sum(p.size for p in parts) * 8 * ts / ticks)
    return max(1, round(peak))

"""The text of LL-HLS playlists (RFC 8216bis with Apple's low-latency extensions), and names.

Pure: a ``TrackTimeline`` and the wall-clock time of media time 0 in, playlist text out. What a
player relies on, and why it is spelled here once:
- every segment carries EXT-X-PROGRAM-DATE-TIME, computed from the stream's one media clock,
  so the video and the audio playlists, and the cards' EXT-X-DATERANGE tags, share one timeline;
- EXT-X-PART tags are listed for the last ``PART_SEGMENTS`` segments only (older ones would only
  make the playlist longer); their segments stay listed whole;
- EXT-X-PRELOAD-HINT names the part being written, which the server holds a request for until
  it is complete;
- URIs carry the packager's ``epoch`` (its start), so that a restarted server never reuses a
  name a CDN has cached as immutable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from relay.hls.timeline import TrackTimeline

PART_SEGMENTS = 3  # segments (the open one included) whose parts are listed
HOLD_BACK_PARTS = 3  # PART-HOLD-BACK in PART-TARGETs: the spec's SHOULD (its MUST is 2)
VERSION = 6


def iso_date(wall: float) -> str:
    """An EXT-X-PROGRAM-DATE-TIME / DATERANGE date: UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(wall, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def init_name(epoch: str, map_id: int) -> str:
    return f"{epoch}-init{map_id}.mp4"


def segment_name(epoch: str, msn: int) -> str:
    return f"{epoch}-{msn}.m4s"


def part_name(epoch: str, msn: int, index: int) -> str:
    return f"{epoch}-{msn}.{index}.m4s"


@dataclass(frozen=True, slots=True)
class DateRange:
    """One EXT-X-DATERANGE: a card on screen from ``start`` (wall seconds) to ``end`` (or still)."""

    id: str
    cls: str
    start: float
    end: float | None
    attributes: tuple[tuple[str, str], ...]  # X-... client attributes, quoted-string values

    def tag(self) -> str:
        text = f'#EXT-X-DATERANGE:ID="{self.id}",CLASS="{self.cls}",START-DATE="{iso_date(self.start)}"'
        if self.end is not None:
            text += f',END-DATE="{iso_date(self.end)}"'
        for name, value in self.attributes:
            text += f',{name}="{value}"'
        return text


def _seconds(ticks: int, timescale: int) -> str:
    return f"{ticks / timescale:.5f}"


def media_playlist(
    timeline: TrackTimeline,
    *,
    epoch: str,
    wall_at_zero: float,
    dateranges: Sequence[DateRange] = (),
) -> str:
    """One track's live playlist: the window, the open segment's parts and the preload hint."""
    ts = timeline.timescale
    part_target = math.ceil(timeline.part_target / ts * 1000) / 1000  # never printed below a real part
    hold_back = HOLD_BACK_PARTS * part_target
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{timeline.target_duration_s}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
    ]
    segments = timeline.segments
    first = segments[0].msn if segments else 0
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{timeline.evicted_discontinuities}")
    lines.extend(d.tag() for d in dateranges)
    current_map: int | None = None
    with_parts = {s.msn for s in segments[-PART_SEGMENTS:]}
    for segment in segments:
        if segment.discontinuity and current_map is not None:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.map_id != current_map:
            lines.append(f'#EXT-X-MAP:URI="{init_name(epoch, segment.map_id)}"')
            current_map = segment.map_id
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso_date(wall_at_zero + segment.start / ts)}")
        if segment.msn in with_parts:
            for part in segment.parts:
                independent = ",INDEPENDENT=YES" if part.independent else ""
                uri = part_name(epoch, part.msn, part.number)
                lines.append(f'#EXT-X-PART:DURATION={_seconds(part.duration, ts)},URI="{uri}"{independent}')
        if segment.duration is not None:
            lines.append(f"#EXTINF:{_seconds(segment.duration, ts)},")
            lines.append(segment_name(epoch, segment.msn))
    hint = timeline.next_part()
    if hint is not None:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_name(epoch, *hint)}"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Variant:
    """One video rung as the multivariant playlist lists it."""

    name: str
    width: int
    height: int
    bandwidth: int  # bits/s, peak, audio included
    codecs: str
    fps: int


def multivariant_playlist(variants: Sequence[Variant], *, audio: str | None) -> str:
    """The stream's multivariant playlist: each rung, highest first, with the AAC rendition."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",'
            f'URI="{audio}/index.m3u8"'
        )
    for v in variants:
        audio_attr = ',AUDIO="aac"' if audio is not None else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},RESOLUTION={v.width}x{v.height},"
            f'CODECS="{v.codecs}",FRAME-RATE={v.fps:.3f}{audio_attr}'
        )
        lines.append(f"{v.name}/index.m3u8")
    return "\n".join(lines) + "\n"


def avc_codec(annexb: bytes) -> str | None:
    """The RFC 6381 ``avc1.PPCCLL`` name of an H.264 stream, from the SPS in an Annex-B frame."""
    for nal in _nal_units(annexb):
        if nal and nal[0] & 0x1F == 7 and len(nal) >= 4:
            return f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
    return None


AAC_LC = "mp4a.40.2"


def target_duration(segment_s: float) -> int:
    """EXT-X-TARGETDURATION: segments follow a ``segment_s`` grid and end up to a quarter of it
    early or late (a keyframe a little off the grid); past TARGETDURATION minus a part they are
    cut anyway, so none is longer. It never changes."""
    return max(1, math.ceil(segment_s * 1.5))


def _nal_units(data: bytes) -> list[bytes]:
    units: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        units.append(data[begin:end].rstrip(b"\x00"))
        start = nxt
    return units

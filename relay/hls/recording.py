"""A recording on disk: its append-only index (one JSON object per line), read back, and retention.

Pure: line text out (for ``recorder.py`` to append), line text in (``parse_index``), decisions
out. A recording is one publishing session, kept as the HLS packager made it: per track an init
segment per ``EXT-X-MAP`` and one file per segment, the bytes of the segment's parts appended to
it as each part completes. The index gets a ``part`` line only once that part's bytes are in the
segment file, and a ``segment`` line once the segment is complete, so whatever a crash (SIGKILL)
leaves behind is consistent: a segment file may hold a few bytes no line names (the part being
written), and the last segment of each track may lack its ``segment`` line, in which case its
recorded parts are a byte-range prefix of its file. A last line cut off mid-write is skipped.

Lines, by ``type``:
- ``recording``: id, stream, the wall-clock time of media time 0 (so replayed program dates and
  card dates equal the live ones) and the start time;
- ``track``: a track's name, kind, timescale and picture size, and its RFC 6381 codecs;
- ``init``: the init segment of one map of a track was written;
- ``part``: one part of segment ``msn`` (its map, whether it follows a discontinuity, start
  and duration in the track's ticks, bytes, keyframe start);
- ``segment``: segment ``msn`` is complete (duration, bytes);
- ``card``: a card event (the fields of ``relay.cards`` events, at its media time ``pts_ms``);
- ``end``: the recording ended (when, why). A recording with no ``end`` line that nobody is
  writing was interrupted (the server was killed): it is still complete up to its last part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

INDEX = "index.jsonl"
State = Literal["recording", "complete", "interrupted"]


def init_file(map_id: int) -> str:
    return f"init{map_id}.mp4"


def segment_file(msn: int) -> str:
    return f"{msn}.m4s"


class TrackInfo(NamedTuple):
    """One recorded track: a video rung or the AAC audio."""

    name: str
    kind: str  # "video" or "audio"
    timescale: int
    width: int
    height: int
    codecs: str


class RecordedPart(NamedTuple):
    number: int
    start: int
    duration: int
    size: int
    independent: bool


@dataclass(slots=True)
class RecordedSegment:
    """One segment of a track as the index has it: its recorded parts, and its end if complete."""

    msn: int
    map_id: int
    discontinuity: bool
    parts: list[RecordedPart] = field(default_factory=list)
    duration: int | None = None  # set by its ``segment`` line

    @property
    def start(self) -> int:
        return self.parts[0].start

    @property
    def complete(self) -> bool:
        return self.duration is not None

    @property
    def recorded_duration(self) -> int:
        """Ticks playable: the whole segment, or (cut short by a crash) its recorded parts."""
        return self.duration if self.duration is not None else sum(p.duration for p in self.parts)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def end(self) -> int:
        return self.start + self.recorded_duration


@dataclass(slots=True)
class RecordedTrack:
    info: TrackInfo
    maps: set[int] = field(default_factory=set)  # init segments written
    segments: list[RecordedSegment] = field(default_factory=list)

    def playable(self) -> list[RecordedSegment]:
        """Segments a player can play: whole from their first part, with an init segment, and
        for video beginning with a keyframe unless they follow on the segment before them (one
        the packager cut without a keyframe, as the live playlist has it). A recording that
        began in the middle of a segment skips that one."""
        out: list[RecordedSegment] = []
        for s in self.segments:
            if not s.parts or s.parts[0].number != 0 or s.map_id not in self.maps:
                continue
            prev = out[-1] if out else None
            follows = prev is not None and prev.complete and prev.end == s.start and prev.map_id == s.map_id
            if s.parts[0].independent or self.info.kind != "video" or follows:
                out.append(s)
        return out


class CardLine(NamedTuple):
    seq: int
    action: str
    card_id: str
    card_json: str
    pts_ms: int


@dataclass(slots=True)
class Recording:
    """One recording's index, read back."""

    id: str
    stream: str
    wall_at_zero: float
    started_at: float
    tracks: dict[str, RecordedTrack] = field(default_factory=dict)
    cards: list[CardLine] = field(default_factory=list)
    ended_at: float | None = None
    end_reason: str | None = None

    def video_tracks(self) -> list[RecordedTrack]:
        """Video rungs, highest first."""
        videos = [t for t in self.tracks.values() if t.info.kind == "video" and t.playable()]
        def rank(track: RecordedTrack) -> tuple[int, int]:
            return min(track.info.width, track.info.height), track.info.width * track.info.height

        return sorted(videos, key=rank, reverse=True)

    def reference(self) -> RecordedTrack | None:
        """The track whose times a clip's start and the listing's duration are measured on."""
        videos = self.video_tracks()
        if videos:
            return videos[0]
        return next((t for t in self.tracks.values() if t.playable()), None)

    def media_span(self) -> tuple[float, float] | None:
        """(first, last) media time in seconds of what can be played, on the reference track."""
        track = self.reference()
        if track is None:
            return None
        playable = track.playable()
        ts = track.info.timescale
        return playable[0].start / ts, playable[-1].end / ts

    def state(self, *, active: bool) -> State:
        if active:
            return "recording"
        return "complete" if self.ended_at is not None else "interrupted"

    def size(self) -> int:
        return sum(s.size for t in self.tracks.values() for s in t.segments)


# ---- lines out ---------------------------------------------------------------------------------
def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


def header_line(recording_id: str, stream: str, *, wall_at_zero: float, started_at: float) -> str:
    return _line(
        {
            "type": "recording",
            "id": recording_id,
            "stream": stream,
            "wall_at_zero": round(wall_at_zero, 6),
            "started_at": round(started_at, 3),
        }
    )


def track_line(info: TrackInfo) -> str:
    return _line({"type": "track", **info._asdict()})


def init_line(track: str, map_id: int) -> str:
    return _line({"type": "init", "track": track, "map": map_id})


def part_line(track: str, msn: int, map_id: int, discontinuity: bool, part: RecordedPart) -> str:
    return _line(
        {
            "type": "part",
            "track": track,
            "msn": msn,
            "map": map_id,
            "disc": discontinuity,
            "n": part.number,
            "start": part.start,
            "dur": part.duration,
            "size": part.size,
            "ind": part.independent,
        }
    )


def segment_line(track: str, msn: int, duration: int) -> str:
    return _line({"type": "segment", "track": track, "msn": msn, "dur": duration})


def card_line(card: CardLine) -> str:
    return _line({"type": "card", **card._asdict()})


def end_line(at: float, reason: str) -> str:
    return _line({"type": "end", "at": round(at, 3), "reason": reason})


# ---- lines in ----------------------------------------------------------------------------------
def parse_index(lines: Iterable[str]) -> Recording | None:
    """The recording an index describes (None without a readable ``recording`` line first).

    Lines that do not parse (the last one, cut off by a crash) or do not fit (a part that is not
    the next of its segment) are skipped: what they describe is not played."""
    recording: Recording | None = None
    for text in lines:
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                continue
            kind = obj.get("type")
            if recording is None:
                if kind == "recording":
                    recording = Recording(
                        str(obj["id"]), str(obj["stream"]), float(obj["wall_at_zero"]), float(obj["started_at"])
                    )
                continue
            _apply(recording, kind, obj)
        except (ValueError, KeyError, TypeError):
            continue
    return recording


def _apply(recording: Recording, kind: object, obj: dict[str, Any]) -> None:
    if kind == "track":
        info = TrackInfo(
            str(obj["name"]), str(obj["kind"]), int(obj["timescale"]), int(obj["width"]), int(obj["height"]),
            str(obj["codecs"]),
        )  # fmt: skip
        if info.timescale > 0 and info.name not in recording.tracks:
            recording.tracks[info.name] = RecordedTrack(info)
        return
    if kind == "card":
        card = CardLine(
            int(obj["seq"]), str(obj["action"]), str(obj["card_id"]), str(obj["card_json"]), int(obj["pts_ms"])
        )
        recording.cards.append(card)
        return
    if kind == "end":
        recording.ended_at = float(obj["at"])
        recording.end_reason = str(obj["reason"])
        return
    track = recording.tracks.get(str(obj.get("track")))
    if track is None:
        return
    if kind == "init":
        track.maps.add(int(obj["map"]))
    elif kind == "part":
        msn, number = int(obj["msn"]), int(obj["n"])
        last = track.segments[-1] if track.segments else None
        if last is None or last.msn != msn:
            if last is not None and msn <= last.msn:
                return  # not after the segment before it
            last = RecordedSegment(msn, int(obj["map"]), bool(obj["disc"]))
            track.segments.append(last)
        if number != len(last.parts) or last.complete:
            return  # a part is missing before it (dropped): the segment ends at the gap
        part = RecordedPart(number, int(obj["start"]), int(obj["dur"]), int(obj["size"]), bool(obj["ind"]))
        if part.duration <= 0 or part.size <= 0:
            return
        last.parts.append(part)
    elif kind == "segment":
        last = track.segments[-1] if track.segments else None
        if last is not None and last.msn == int(obj["msn"]) and last.parts:
            last.duration = int(obj["dur"])


# ---- retention ---------------------------------------------------------------------------------
class Stored(NamedTuple):
    """A recording as retention sees it: when it ended (or was last written), its bytes."""

    key: str
    ended_at: float
    size: int


def expired(stored: Sequence[Stored], *, now: float, max_age_s: float, max_bytes: int) -> list[str]:
    """Which recordings to delete: those older than ``max_age_s``, then the oldest of the rest
    until the total is at most ``max_bytes``. The caller leaves recordings being written out."""
    doomed = [s for s in stored if now - s.ended_at > max_age_s]
    kept = sorted((s for s in stored if now - s.ended_at <= max_age_s), key=lambda s: (s.ended_at, s.key))
    total = sum(s.size for s in kept)
    for s in kept:
        if total <= max_bytes:
            break
        doomed.append(s)
        total -= s.size
    return [s.key for s in doomed]

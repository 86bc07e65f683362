"""Where one HLS track's parts and segments begin and end, and what a blocking request waits for.

Pure: samples (their pts in the track's timescale and whether they are keyframes) come in, in
order, each after the one before it has been written; a ``Cut`` says which part (and segment)
the new sample closed. The packager writes every sample as its own fMP4 fragment, so a part is
simply the bytes written between two cuts and a segment the concatenation of its parts.

The rules, in the track's ticks:
- a part closes at the first sample at least 85 % of ``part_s`` after the part's start, so
  parts are about ``part_s`` long; PART-TARGET (their maximum) is 1.5 x ``part_s``, so that a
  source whose frames come up to ~0.2 s apart (a publisher on a busy link) keeps within it;
- segments follow a grid of ``grid_s`` on the stream's media clock, the same for every track:
  a segment that began in cell k (its start plus ``early_s``, divided by ``grid_s``) closes at
  the first keyframe at or after (k + 1) x grid_s - ``early_s``. The packager asks every rung
  for a keyframe just before each grid point, so all rungs cut at the same frame and share
  segment numbers (what lets a player switch rungs); ``early_s`` lets a keyframe that lands a
  frame early still cut. A segment that would otherwise outgrow the target duration is cut at
  any sample (the next one then does not begin with a keyframe: its first part is not
  INDEPENDENT);
- ``end`` closes the open part and segment (the muxer was closed: a gap, a new picture size);
  the next sample opens a segment marked as a discontinuity;
- the window keeps ``window`` complete segments; older ones are evicted (their numbers are
  returned so the bytes can go too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

PART_CLOSE = 0.85  # a part closes at the first sample this fraction of part_s after its start
PART_TARGET = 1.5  # PART-TARGET (the longest a part may be) in part_s


class Part(NamedTuple):
    """One closed partial segment: segment number, index in it, start and duration in ticks."""

    msn: int
    number: int  # its index in the segment
    start: int
    duration: int
    independent: bool  # begins with a keyframe


@dataclass(slots=True)
class Segment:
    """One media segment: its parts so far; ``duration`` is set once it is complete."""

    msn: int
    start: int
    map_id: int
    discontinuity: bool  # the first after an ``end`` (a new muxer, maybe a new picture)
    independent: bool  # begins with a keyframe
    parts: list[Part] = field(default_factory=list)
    duration: int | None = None

    @property
    def complete(self) -> bool:
        return self.duration is not None


class Cut(NamedTuple):
    """What one sample (or ``end``) closed: the part, the segment if it ended too, evicted msns."""

    part: Part
    segment: Segment | None
    evicted: tuple[int, ...]


Resolution = Literal["ready", "wait", "bad"]


class TrackTimeline:
    """Owns one track's segment list (the window and the open segment) and its cut rules."""

    def __init__(
        self,
        *,
        timescale: int,
        part_s: float,
        grid_s: float,
        early_s: float,
        target_duration_s: int,
        window: int,
    ) -> None:
        self.timescale = timescale
        self.part_s = part_s
        self.part_target = round(part_s * PART_TARGET * timescale)
        self._part_close = math.ceil(part_s * PART_CLOSE * timescale)
        self._grid = round(grid_s * timescale)
        self._early = round(early_s * timescale)
        self.target_duration_s = target_duration_s
        # Past this, a segment is cut at the next sample even without a keyframe, so that no
        # segment outgrows EXT-X-TARGETDURATION (one more part of slack for the last sample).
        self._segment_max = target_duration_s * timescale - self.part_target
        self.window = window
        self.segments: list[Segment] = []  # the window, then the open segment (if any)
        self.evicted_discontinuities = 0  # EXT-X-DISCONTINUITY-SEQUENCE
        self._next_msn = 0
        self._map_id = 0
        self._open: Segment | None = None
        self._part_start = 0
        self._part_independent = False
        self._last_pts: int | None = None
        self._ended = False  # ``end`` was called: the next segment is a discontinuity

    # ---- samples in ---------------------------------------------------------------------------
    def on_sample(self, pts: int, keyframe: bool, *, new_map: bool = False) -> Cut | None:
        """A sample was written at ``pts``; returns what it closed (None for the first of a
        segment after a start or ``end``, and for a sample that is not after the previous one)."""
        if new_map:
            self._map_id += 1
        segment = self._open
        if segment is None:
            self._begin(pts, keyframe, discontinuity=self._ended or new_map)
            return None
        if self._last_pts is not None and pts <= self._last_pts:
            return None  # not after the previous sample: it joins the open part
        self._last_pts = pts
        seg_len = pts - segment.start
        new_segment = new_map or (keyframe and pts >= self.segment_due(segment.start)) or seg_len >= self._segment_max
        if not new_segment and pts - self._part_start < self._part_close:
            return None
        part = self._close_part(segment, pts)
        if not new_segment:
            self._part_start, self._part_independent = pts, keyframe
            return Cut(part, None, ())
        closed, evicted = self._close_segment(segment, pts)
        self._begin(pts, keyframe, discontinuity=new_map)
        return Cut(part, closed, evicted)

    def end(self, end_pts: int) -> Cut | None:
        """The track's media stops at ``end_pts`` (its muxer was closed): close what is open."""
        segment = self._open
        if segment is None:
            return None
        end_pts = max(end_pts, (self._last_pts or segment.start) + 1)
        part = self._close_part(segment, end_pts)
        closed, evicted = self._close_segment(segment, end_pts)
        self._open = None
        self._last_pts = None
        self._ended = True
        return Cut(part, closed, evicted)

    def segment_due(self, start: int) -> int:
        """The pts from which a keyframe ends the segment that began at ``start``."""
        cell = (start + self._early) // self._grid
        return max((cell + 1) * self._grid - self._early, start + self._part_close)

    def _begin(self, pts: int, keyframe: bool, *, discontinuity: bool) -> None:
        segment = Segment(self._next_msn, pts, self._map_id, discontinuity, keyframe)
        self._next_msn += 1
        self.segments.append(segment)
        self._open = segment
        self._part_start, self._part_independent = pts, keyframe
        self._last_pts = pts
        self._ended = False

    def _close_part(self, segment: Segment, end: int) -> Part:
        part = Part(segment.msn, len(segment.parts), self._part_start, end - self._part_start, self._part_independent)
        segment.parts.append(part)
        return part

    def _close_segment(self, segment: Segment, end: int) -> tuple[Segment, tuple[int, ...]]:
        segment.duration = end - segment.start
        complete = [s for s in self.segments if s.complete]
        evicted = complete[: max(0, len(complete) - self.window)]
        for old in evicted:
            self.segments.remove(old)
            self.evicted_discontinuities += old.discontinuity
        return segment, tuple(s.msn for s in evicted)

    # ---- what exists --------------------------------------------------------------------------
    @property
    def open_segment(self) -> Segment | None:
        return self._open

    @property
    def map_id(self) -> int:
        return self._map_id

    def next_part(self) -> tuple[int, int] | None:
        """(msn, index) of the part being written now: the preload hint (None while stopped)."""
        segment = self._open
        return None if segment is None else (segment.msn, len(segment.parts))

    def last_msn(self) -> int | None:
        return self.segments[-1].msn if self.segments else None

    def segment(self, msn: int) -> Segment | None:
        first = self.segments[0].msn if self.segments else 0
        index = msn - first
        if 0 <= index < len(self.segments) and self.segments[index].msn == msn:
            return self.segments[index]
        return next((s for s in self.segments if s.msn == msn), None)

    def has_part(self, msn: int, index: int) -> bool:
        segment = self.segment(msn)
        return segment is not None and index < len(segment.parts)

    def resolve(self, msn: int, part: int | None) -> Resolution:
        """A blocking playlist request (``_HLS_msn``, ``_HLS_part``): may it be answered now?

        "bad" for a segment more than two past the newest (the spec's 400), "ready" once the
        playlist holds that segment complete (no ``part``) or that part or a later one (a part
        index past a complete segment's last means the next segment's first part).
        """
        newest = self._next_msn - 1
        if msn > newest + 2 or msn < 0 or (part is not None and part < 0):
            return "bad"
        if self.segments and msn < self.segments[0].msn:
            return "ready"  # long gone: the current playlist is newer than what was asked for
        segment = self.segment(msn)
        if segment is None:
            return "wait"  # the segment is still to come
        if part is None:
            return "ready" if segment.complete else "wait"
        if part < len(segment.parts):
            return "ready"
        if not segment.complete:
            return "wait"
        if part == len(segment.parts):  # the part after a complete segment's last: the next one's first
            following = self.segment(msn + 1)
            return "ready" if following is not None and following.parts else "wait"
        return "bad"  # a part index beyond a complete segment that will never exist

    def part_state(self, msn: int, index: int) -> Literal["ready", "wait", "gone"]:
        """A part request: there ("ready"), still to be written ("wait": the part being written
        or the next segment's first, as a preload hint may name), or never ("gone")."""
        segment = self.segment(msn)
        if segment is not None:
            if index < len(segment.parts):
                return "ready"
            if segment.complete:
                return "gone"
            return "wait" if index <= len(segment.parts) + 1 else "gone"
        return "wait" if msn == self._next_msn and index == 0 else "gone"

    def segment_state(self, msn: int) -> Literal["ready", "wait", "gone"]:
        segment = self.segment(msn)
        if segment is not None:
            return "ready" if segment.complete else "wait"
        return "wait" if msn == self._next_msn else "gone"

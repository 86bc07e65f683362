"""The stream's media time for each of the publisher's frames, from the publisher's own clock.

A frame's RTP timestamp says when the camera took it; the time it reaches the server says that
plus the network's delay of the moment. Stamping frames with their arrival time (as LiveCart did
up to session 10) passes the network's jitter on to every viewer: frames 30-37 ms apart on a
steady 30 fps source, which players then present unevenly and which puts a card "one frame"
late by more than a frame's duration. ``SourceClock`` keeps the publisher's spacing and anchors
it to the server's clock on the earliest arrivals (the lower envelope of arrival minus capture):

- a frame is never stamped later than it arrived (an earlier-than-expected arrival moves the
  anchor back to it), so a card shown at server time T never targets a frame that arrived after
  T by more than the jitter of the moment;
- when every frame of a window arrived more than ``max_lag`` after its stamp (the publisher's
  clock runs slow against the server's, or the path's delay grew for good), the anchor slews
  forward by that much, a little per frame, so drift never piles up;
- a jump of more than ``resync`` between the two clocks, or a source timestamp going back (a
  new publisher, a new RTP base, a paused source) anchors afresh at the arrival;
- stamps only ever increase across new frames, and the same source timestamp seen twice (the
  forwarded and the decoded copy of one frame) gets the same stamp.

Pure: ``now`` (90 kHz ticks of the stream's clock) is passed in; property-tested.
"""

from __future__ import annotations

from collections import OrderedDict

from transcode.frames import VIDEO_CLOCK_HZ as HZ

WRAP = 1 << 32  # RTP timestamps are 32 bits


class SourceClock:
    def __init__(
        self,
        *,
        max_lag: int = HZ * 40 // 1000,
        window: int = 2 * HZ,
        slew: int = HZ * 2 // 1000,
        resync: int = HZ,
        remember: int = 64,
    ) -> None:
        self.max_lag, self.window, self.slew, self.resync, self.remember = max_lag, window, slew, resync, remember
        self._offset: int | None = None  # stamp = unwrapped source ticks + offset
        self._last_src = 0  # the last new source timestamp, unwrapped
        self._last_raw = 0  # ... as it came (32 bits)
        self._last_out = -1
        self._window_start = 0
        self._window_min_lag: int | None = None
        self._slew_left = 0  # ticks still to move the anchor forward
        self._seen: OrderedDict[int, int] = OrderedDict()  # recent source timestamp -> stamp
        self.resyncs = 0  # anchored afresh (the first frame is not counted)

    def stamp(self, source_ts: int | None, now: int) -> int:
        """The media time (ticks) of a frame taken at ``source_ts`` (90 kHz, 32-bit wrapping,
        or None when the frame carries no time of its own) that arrived at ``now``."""
        if source_ts is None:
            return self._out(now)
        source_ts %= WRAP
        known = self._seen.get(source_ts)
        if known is not None and now - known <= self.resync:  # (not a new source that reuses it)
            return known
        if self._offset is None:
            src = source_ts
            self._anchor(src, now)
        else:
            step = (source_ts - self._last_raw) % WRAP
            src = self._last_src + (step if step < WRAP // 2 else step - WRAP)
            if src < self._last_src or abs(now - (src + self._offset)) > self.resync:
                self.resyncs += 1
                self._anchor(src, now)
        self._last_src, self._last_raw = src, source_ts
        assert self._offset is not None
        lag = now - (src + self._offset)
        if lag < 0:  # earlier than any arrival so far: the anchor moves back to it
            self._offset += lag
            self._slew_left = 0
            lag = 0
        self._track_drift(lag, now)
        out = self._out(src + self._offset)
        self._seen[source_ts] = out
        if len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return out

    def _anchor(self, src: int, now: int) -> None:
        self._offset = now - src
        self._window_start, self._window_min_lag, self._slew_left = now, None, 0

    def _track_drift(self, lag: int, now: int) -> None:
        assert self._offset is not None
        if self._slew_left:
            move = min(self._slew_left, self.slew, lag)  # never past the frame's own arrival
            self._offset += move
            self._slew_left -= move
        low = lag if self._window_min_lag is None else min(self._window_min_lag, lag)
        self._window_min_lag = low
        if now - self._window_start >= self.window:
            if low > self.max_lag and not self._slew_left:
                self._slew_left = low
            self._window_start, self._window_min_lag = now, None

    def _out(self, ticks: int) -> int:
        self._last_out = max(ticks, self._last_out + 1)
        return self._last_out

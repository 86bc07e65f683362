"""One stream's LL-HLS packaging at run time: encoded frames in, parts, segments and playlists out.

No second encode: every video frame a rung's encoder made for WebRTC is written once more into
that rung's fMP4 (``fmp4.py``), and the stream's AAC (encoded once, by ``transcode``) into the
audio track. The muxing runs in one worker thread per stream, fed from a bounded queue; the
decisions (``timeline.py``) and the playlist text (``playlist.py``) are pure and run on the loop,
where the parts' bytes are kept (the window only) and blocking requests wait for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from relay.config import HlsConfig
from relay.errors import BadRequest, LimitReached, MediaNotFound
from relay.hls.dateranges import CardRanges
from relay.hls.fmp4 import Fmp4Writer, MuxOut
from relay.hls.library import RecordingLibrary
from relay.hls.playlist import (
    AAC_LC,
    PART_SEGMENTS,
    Variant,
    avc_codec,
    media_playlist,
    multivariant_playlist,
    target_duration,
)
from relay.hls.recorder import StreamRecorder
from relay.hls.timeline import Cut, TrackTimeline
from transcode.frames import AAC, AUDIO_CLOCK_HZ, H264, VIDEO_CLOCK_HZ, EncodedFrame
from transcode.rendition import SOURCE

log = logging.getLogger(__name__)

AUDIO = "audio"  # the AAC track's name in URLs
QUEUE_ITEMS = 1000  # frames waiting for the packaging thread (~6 s of a 3-rung ladder with audio)
BLOCK_TARGETS = 3  # a blocking request waits at most this many target durations
SILENCE_S = 1.0  # a track without samples this long is finished: its last part and segment complete
KEYFRAME_LEAD_S = 0.05  # rungs are asked for a keyframe this long before each segment grid point


class HlsTrack:
    """Owns one track's timeline and the bytes of its init segments, parts and segments."""

    def __init__(self, name: str, kind: str, timeline: TrackTimeline, size: tuple[int, int]) -> None:
        self.name = name
        self.kind = kind
        self.timeline = timeline
        self.size = size
        self.codecs: str | None = AAC_LC if kind == AUDIO else None
        self.inits: dict[int, bytes] = {}
        self.parts: dict[tuple[int, int], bytes] = {}
        self.segments: dict[int, bytes] = {}
        self._pending = bytearray()  # the part being written
        self._changed = asyncio.Event()
        self.last_sample_at = 0.0  # monotonic time of the newest sample queued
        self.finished = True  # no sample since the last ``finish`` (or ever)
        self.bytes_out = 0
        self.skip_to_keyframe = False  # frames were dropped before the thread: resume at a keyframe
        self.recorder: StreamRecorder | None = None  # gets every part and segment this track closes

    @property
    def timescale(self) -> int:
        return self.timeline.timescale

    def apply(self, out: MuxOut, pts: int, keyframe: bool) -> None:
        """What the writer made of one sample (on the loop, in order)."""
        self._pending += out.flushed
        changed = False
        if out.closed_at is not None:
            changed |= self._store(self.timeline.end(out.closed_at))
        if out.accepted:
            new_map = out.init is not None and bool(self.inits)
            changed |= self._store(self.timeline.on_sample(pts, keyframe, new_map=new_map))
            if out.init is not None:
                self.inits[self.timeline.map_id] = out.init
                changed = True
        if changed:
            self._changed.set()
            self._changed = asyncio.Event()

    def _store(self, cut: Cut | None) -> bool:
        if cut is None:
            return False
        part = cut.part
        data = bytes(self._pending)
        self._pending.clear()
        self.parts[(part.msn, part.number)] = data
        self.bytes_out += len(data)
        recorder = self.recorder
        if recorder is not None:
            of = cut.segment if cut.segment is not None else self.timeline.segment(part.msn)  # the part's segment
            if of is not None:
                recorder.on_part(self, part, of, data)
            if cut.segment is not None:
                recorder.on_segment(self, cut.segment)
        if cut.segment is not None:
            segment = cut.segment
            self.segments[segment.msn] = b"".join(self.parts.get((segment.msn, p.number), b"") for p in segment.parts)
            # Parts are listed for the last few segments only; keep one more for slow clients.
            stale = segment.msn - PART_SEGMENTS
            for key in [k for k in self.parts if k[0] < stale]:
                del self.parts[key]
        for msn in cut.evicted:
            self.segments.pop(msn, None)
        live_maps = {s.map_id for s in self.timeline.segments}
        for map_id in [m for m in self.inits if m not in live_maps and m != self.timeline.map_id]:
            del self.inits[map_id]
        return True

    async def wait(self, ready: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``ready()`` holds (checked after every change), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return ready()
        return True


class StreamHls:
    """Owns one stream's HLS tracks, its packaging thread and the task that feeds it."""

    def __init__(
        self,
        stream: str,
        config: HlsConfig,
        *,
        fps: int,
        wall_at_zero: float,
        rung_kbps: Callable[[str], int],
        request_keyframe: Callable[[str], None],
        recordings: RecordingLibrary | None = None,
        record_rungs: tuple[str, ...] = (),
    ) -> None:
        self.stream = stream
        self.config = config
        self.fps = fps
        self.wall_at_zero = wall_at_zero
        self.epoch = _base36(int(time.time() * 1000))
        self._rung_kbps = rung_kbps
        self._request_keyframe = request_keyframe
        self._grid = round(config.segment_s * VIDEO_CLOCK_HZ)
        self._lead = round(KEYFRAME_LEAD_S * VIDEO_CLOCK_HZ)
        self._next_grid = 0  # pts of the next grid point whose keyframes are still to be asked for
        self.tracks: dict[str, HlsTrack] = {}
        self._writers: dict[str, Fmp4Writer] = {}  # touched by the packaging thread only
        self._sizes: dict[str, tuple[int, int]] = {}
        self.cards = CardRanges()
        # Each publishing session recorded from these tracks' parts (None: [recording] enabled = false).
        self.recorder = (
            None
            if recordings is None
            else StreamRecorder(
                stream, recordings, rungs=record_rungs, wall_at_zero=wall_at_zero, showing=self.cards.showing
            )
        )
        self._queue: deque[tuple[str, EncodedFrame | tuple[int, int] | None]] = deque()
        self._ready = asyncio.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"hls-{stream}")
        self._task: asyncio.Task[None] | None = None
        self.frames_dropped = 0
        self.mux_seconds = 0.0
        self.blocking = 0  # requests waiting now
        self._closed = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"hls {self.stream}")
            if self.recorder is not None:
                self.recorder.start()

    def on_publisher(self, record: bool) -> None:
        """A publisher took the stream (``record``: and is to be recorded), or it left."""
        if self.recorder is not None:
            if record:
                self.recorder.arm()
            else:
                self.recorder.disarm()

    # ---- frames in (on the loop) --------------------------------------------------------------
    def publish(self, frame: EncodedFrame) -> None:
        """Every encoded frame of the stream; HLS takes the H.264 ladder rungs and the AAC."""
        if self._closed:
            return
        if frame.kind == "audio":
            if frame.codec != AAC:
                return
            name = AUDIO
        elif frame.codec != H264 or frame.rung == SOURCE or frame.rung not in self._sizes:
            return  # the passthrough rung keeps the publisher's GOP (and maybe B-frames): not here
        else:
            name = frame.rung
            if frame.pts >= self._next_grid - self._lead:
                # One keyframe on every rung at (about) the same source frame: aligned segments.
                self._next_grid = (frame.pts + self._lead) // self._grid * self._grid + self._grid
                for rung in self._sizes:
                    self._request_keyframe(rung)
        track = self.tracks.get(name) or self._add_track(name)
        if track.codecs is None and frame.keyframe:
            track.codecs = avc_codec(frame.data)
        if track.skip_to_keyframe:
            if not frame.keyframe:
                return
            track.skip_to_keyframe = False
        if len(self._queue) >= QUEUE_ITEMS:
            self.frames_dropped += 1
            track.skip_to_keyframe = track.kind != AUDIO
            return
        self._queue.append((name, frame))
        track.last_sample_at = time.monotonic()
        track.finished = False
        self._ready.set()

    def set_rungs(self, sizes: dict[str, tuple[int, int]]) -> None:
        """The encoded rungs and their sizes now: a rung whose picture changed gets a new init."""
        for name, size in sizes.items():
            track = self.tracks.get(name)
            if track is not None and track.size != size:
                track.size = size
                track.codecs = None
                self._queue.append((name, size))
                self._ready.set()
        self._sizes = {n: s for n, s in sizes.items() if n != SOURCE}

    def on_card(self, seq: int, action: str, card_id: str, card_json: str, pts_ms: int) -> None:
        self.cards.apply(seq, action, card_id, card_json, pts_ms)
        if self.recorder is not None:
            self.recorder.on_card(seq, action, card_id, card_json, pts_ms)

    def _add_track(self, name: str) -> HlsTrack:
        cfg = self.config
        if name == AUDIO:
            timeline = TrackTimeline(
                timescale=AUDIO_CLOCK_HZ,
                part_s=cfg.part_s,
                grid_s=cfg.segment_s,
                early_s=0,
                target_duration_s=target_duration(cfg.segment_s),
                window=cfg.window_segments,
            )
            track = HlsTrack(name, AUDIO, timeline, (0, 0))
            self._writers[name] = Fmp4Writer("audio", audio_kbps=cfg.audio_kbps)
        else:
            timeline = TrackTimeline(
                timescale=VIDEO_CLOCK_HZ,
                part_s=cfg.part_s,
                grid_s=cfg.segment_s,
                early_s=cfg.segment_s / 4,
                target_duration_s=target_duration(cfg.segment_s),
                window=cfg.window_segments,
            )
            size = self._sizes[name]
            track = HlsTrack(name, "video", timeline, size)
            self._writers[name] = Fmp4Writer("video", width=size[0], height=size[1])
        track.recorder = self.recorder
        self.tracks[name] = track
        return track

    # ---- the packaging thread -----------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._ready.wait(), SILENCE_S / 2)
            except TimeoutError:
                self._finish_silent(time.monotonic())
            self._ready.clear()
            batch = list(self._queue)
            self._queue.clear()
            if batch:
                results = await loop.run_in_executor(self._pool, self._mux, batch)
                for name, frame, out in results:
                    try:
                        self.tracks[name].apply(out, frame.pts if frame else 0, frame.keyframe if frame else False)
                    except Exception as exc:  # a bug here must not stop HLS for the other tracks
                        log.error("hls %s/%s: packaging failed: %s: %s", self.stream, name, type(exc).__name__, exc)
            recorder = self.recorder
            if recorder is not None and recorder.ending and not self._queue:
                if all(t.finished for t in self.tracks.values()):
                    recorder.end("the publisher left")  # its last parts are cut and recorded

    def _finish_silent(self, now: float) -> None:
        """Tracks that have had no sample for SILENCE_S (the publisher left): finish them, so
        that their playlists end on a complete segment instead of a part that never comes."""
        for name, track in self.tracks.items():
            if not track.finished and now - track.last_sample_at > SILENCE_S:
                track.finished = True
                self._queue.append((name, None))

    def _mux(
        self, batch: list[tuple[str, EncodedFrame | tuple[int, int] | None]]
    ) -> list[tuple[str, EncodedFrame | None, MuxOut]]:
        started = time.thread_time()
        results: list[tuple[str, EncodedFrame | None, MuxOut]] = []
        for name, item in batch:
            writer = self._writers[name]
            if item is None:
                results.append((name, None, writer.finish()))
                continue
            if not isinstance(item, EncodedFrame):
                writer.restart(*item)
                continue
            results.append((name, item, writer.write(item.data, item.pts, item.keyframe)))
        self.mux_seconds += time.thread_time() - started
        return results

    # ---- requests -----------------------------------------------------------------------------
    def track(self, name: str) -> HlsTrack:
        track = self.tracks.get(name)
        if track is None or not track.inits:
            raise MediaNotFound(f"stream {self.stream!r} has no HLS track {name!r} (not live?)")
        return track

    def multivariant(self) -> str:
        variants = []
        audio_kbps = self.config.audio_kbps if AUDIO in self.tracks else 0
        for name, (width, height) in self._sizes.items():
            track = self.tracks.get(name)
            if track is None or not track.inits or track.codecs is None:
                continue
            audio = f",{AAC_LC}" if audio_kbps else ""
            # Peak rate: the encoder's VBV cap is the rung's rate over one second; leave room for
            # keyframes and the container.
            bandwidth = round(self._rung_kbps(name) * 1000 * 1.25) + audio_kbps * 1000
            variants.append(Variant(name, width, height, bandwidth, track.codecs + audio, self.fps))
        if not variants:
            raise MediaNotFound(f"stream {self.stream!r} is not live on HLS yet")
        audio_track = self.tracks.get(AUDIO)
        return multivariant_playlist(variants, audio=AUDIO if audio_track is not None and audio_track.inits else None)

    async def playlist(self, name: str, msn: int | None, part: int | None) -> str:
        """A track's playlist; with ``msn`` (and ``part``), held until the playlist holds them."""
        track = self.track(name)
        if msn is not None:
            timeline = track.timeline
            if timeline.resolve(msn, part) == "bad":
                raise BadRequest(f"_HLS_msn={msn} _HLS_part={part} is beyond what this playlist will hold")
            timeout = BLOCK_TARGETS * timeline.target_duration_s
            if not await self._block(track, lambda: timeline.resolve(msn, part) == "ready", timeout):
                raise LimitReached(f"segment {msn} part {part} of {name} did not arrive in {timeout} s", 1)
        return self.render(track)

    def render(self, track: HlsTrack) -> str:
        timeline = track.timeline
        since = timeline.segments[0].start if timeline.segments else 0
        dateranges = self.cards.ranges(wall_at_zero=self.wall_at_zero, since_ms=since * 1000 // timeline.timescale)
        return media_playlist(timeline, epoch=self.epoch, wall_at_zero=self.wall_at_zero, dateranges=dateranges)

    async def media(self, name: str, file: str) -> bytes:
        """An init segment, part or segment by its file name (a part being written is awaited)."""
        track = self.track(name)
        epoch, _, rest = file.partition("-")
        if epoch != self.epoch:
            raise MediaNotFound(f"{file} is from an earlier run of this server")
        if rest.startswith("init") and rest.endswith(".mp4"):
            data = track.inits.get(_number(rest[4:-4]))
            if data is None:
                raise MediaNotFound(f"no init segment {file}")
            return data
        if not rest.endswith(".m4s"):
            raise MediaNotFound(f"no such HLS file {file}")
        numbers = rest[:-4].split(".")
        timeline = track.timeline
        timeout = BLOCK_TARGETS * timeline.target_duration_s
        if len(numbers) == 2:
            key = (_number(numbers[0]), _number(numbers[1]))
            if timeline.part_state(*key) == "wait":
                await self._block(track, lambda: timeline.part_state(*key) != "wait", timeout)
            data = track.parts.get(key)
        elif len(numbers) == 1:
            msn = _number(numbers[0])
            if timeline.segment_state(msn) == "wait":
                await self._block(track, lambda: timeline.segment_state(msn) != "wait", timeout)
            data = track.segments.get(msn)
        else:
            raise MediaNotFound(f"no such HLS file {file}")
        if data is None:
            raise MediaNotFound(f"{name}/{file} is not (or no longer) on this server")
        return data

    async def _block(self, track: HlsTrack, ready: Callable[[], bool], timeout_s: float) -> bool:
        if ready():
            return True
        if self.blocking >= self.config.max_blocking:
            raise LimitReached(f"{self.blocking} blocking HLS requests are waiting (hls max_blocking)", 1)
        self.blocking += 1
        try:
            return await track.wait(ready, timeout_s)
        finally:
            self.blocking -= 1

    # ---- introspection and shutdown -----------------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        return {
            "epoch": self.epoch,
            "frames_dropped": self.frames_dropped,
            "mux_cpu_s": round(self.mux_seconds, 3),
            "blocking_requests": self.blocking,
            "recorder": self.recorder.snapshot() if self.recorder is not None else None,
            "tracks": [
                {
                    "name": t.name,
                    "codecs": t.codecs,
                    "last_msn": t.timeline.last_msn(),
                    "segments": len(t.timeline.segments),
                    "bytes_out": t.bytes_out,
                }
                for t in self.tracks.values()
            ],
        }

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._close_writers)
        await loop.run_in_executor(None, self._pool.shutdown)
        if self.recorder is not None:
            await self.recorder.close()

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise MediaNotFound(f"{text!r} is not a part or segment number")
    return int(text)


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if value == 0:
            return out

"""Recording one stream: the HLS packager's parts and segments, and the card events, to disk.

Each publishing session is one recording (``library.py`` has the layout, ``recording.py`` the
index). No second mux: the bytes written are the parts the live playlists serve. On the loop,
this class only decides what to write and queues it; one worker thread appends it. Every part is
written as soon as it is complete (its bytes to its segment's file, then its index line, each in
one ``write`` call on an unbuffered file), so a server killed with SIGKILL loses the part being
written, a few tenths of a second, and nothing before it (the page cache outlives the process).
A complete segment is also ``fsync``ed (with the index), for a machine that loses power.

The queue is bounded by bytes (``MAX_QUEUE_BYTES``): a disk that cannot keep up loses the rest of
the segment whose part did not fit (the replay skips over the gap), never the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Protocol

from relay.hls.library import RecordingLibrary
from relay.hls.recording import (
    INDEX,
    CardLine,
    RecordedPart,
    TrackInfo,
    card_line,
    end_line,
    header_line,
    init_file,
    init_line,
    part_line,
    segment_file,
    segment_line,
    track_line,
)
from relay.hls.timeline import Part, Segment

log = logging.getLogger(__name__)

MAX_QUEUE_BYTES = 64 * 1024 * 1024  # media waiting for the disk (~2 min of a default ladder)
SWEEP_EVERY_S = 60.0  # retention is applied this often while recording (and when one ends)
AUDIO = "audio"
DEFAULT_AVC = "avc1.42e01f"  # a video track whose SPS was never seen (not expected)


class Source(Protocol):
    """What the recorder reads of a packager track (``packager.HlsTrack``)."""

    name: str
    kind: str
    size: tuple[int, int]
    codecs: str | None
    inits: dict[int, bytes]

    @property
    def timescale(self) -> int: ...


class _Prepare(NamedTuple):
    folder: Path  # the stream's recordings directory


class _Begin(NamedTuple):
    folder: Path
    recording_id: str
    header: str


class _Init(NamedTuple):
    track: str
    map_id: int
    data: bytes
    lines: str


class _Media(NamedTuple):
    track: str
    msn: int
    data: bytes
    line: str


class _Close(NamedTuple):
    track: str
    line: str


class _Line(NamedTuple):
    text: str


class _End(NamedTuple):
    recording_id: str
    line: str


_Op = _Prepare | _Begin | _Init | _Media | _Close | _Line | _End


class StreamRecorder:
    """Owns one stream's recording: which session is recorded, the write queue, the writing
    thread and its open files. ``start`` and ``close`` belong to the stream's ``StreamHls``."""

    def __init__(
        self,
        stream: str,
        library: RecordingLibrary,
        *,
        rungs: tuple[str, ...],
        wall_at_zero: float,
        showing: Callable[[], list[tuple[int, str, str]]],
    ) -> None:
        self.stream = stream
        self.library = library
        self._rungs = rungs
        self._wall_at_zero = wall_at_zero
        self._showing = showing
        self.current: str | None = None  # the recording being written
        self._armed = False  # a publisher is on: its first segment begins a recording
        self.ending = False  # the publisher left: end once the packager has cut its last part
        self._segment_of: dict[str, int | None] = {}  # per track: the msn being recorded (None: skip to the next)
        self._maps: set[tuple[str, int]] = set()
        self._ops: deque[_Op] = deque()
        self._queued = 0  # bytes of media queued or being written
        self._ready = asyncio.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"rec-{stream}")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.parts_dropped = 0
        self.write_errors = 0
        self.bytes_written = 0
        self.write_seconds = 0.0  # CPU time of the writing thread (its own clock)
        # Touched by the writing thread only.
        self._folder: Path | None = None
        self._index: int | None = None
        self._files: dict[str, tuple[int, int]] = {}  # track -> (msn, descriptor) of its open segment
        self._failed = False
        self._last_sweep = time.monotonic()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"recorder {self.stream}")

    # ---- decisions, on the loop -----------------------------------------------------------------
    def arm(self) -> None:
        """A publisher took the stream: its media is a new recording (the previous one ends)."""
        self.end("a new publisher took over")
        self._armed = True
        # The stream's directory is made (and the writing thread started) now rather than with
        # the first part: a disk problem is logged when the publisher arrives.
        self._queue(_Prepare(self.library.root / self.stream))

    def disarm(self) -> None:
        """The publisher left: the recording ends when its last part is cut (``end``)."""
        self._armed = False
        if self.current is not None:
            self.ending = True

    def wants(self, track: str) -> bool:
        return track == AUDIO or not self._rungs or track in self._rungs

    def on_part(self, source: Source, part: Part, segment: Segment, data: bytes) -> None:
        """A part the packager closed (its bytes are ``data``; ``segment`` is its segment)."""
        name = source.name
        if not self.wants(name) or not data:
            return
        if self.current is None:
            if not self._armed or part.number != 0:
                return
            self._begin(part.start * 1000 // source.timescale)
        if part.number == 0:
            if (name, segment.map_id) not in self._maps:
                if not self._add_map(source, segment.map_id):
                    self._segment_of[name] = None
                    return
            self._segment_of[name] = part.msn
        elif self._segment_of.get(name) != part.msn:
            return  # the recording began after this segment did, or an earlier part was dropped
        if self._queued + len(data) > MAX_QUEUE_BYTES:
            self.parts_dropped += 1
            self._segment_of[name] = None
            return
        recorded = RecordedPart(part.number, part.start, part.duration, len(data), part.independent)
        line = part_line(name, part.msn, segment.map_id, segment.discontinuity, recorded)
        self._queue(_Media(name, part.msn, data, line), len(data))

    def on_segment(self, source: Source, segment: Segment) -> None:
        recorded = self.current is not None and self._segment_of.get(source.name) == segment.msn
        if recorded and segment.duration is not None:
            self._queue(_Close(source.name, segment_line(source.name, segment.msn, segment.duration)))

    def on_card(self, seq: int, action: str, card_id: str, card_json: str, pts_ms: int) -> None:
        if self.current is not None:
            self._queue(_Line(card_line(CardLine(seq, action, card_id, card_json, pts_ms))))

    def end(self, reason: str) -> None:
        """End the recording being written (if any)."""
        self.ending = False
        if self.current is None:
            return
        self._queue(_End(self.current, end_line(time.time(), reason)))
        self.current = None
        self._segment_of.clear()
        self._maps.clear()

    def _begin(self, start_ms: int) -> None:
        now = time.time()
        recording_id = self.library.new_id(now)
        self.current = recording_id
        self.library.active.add((self.stream, recording_id))
        header = header_line(recording_id, self.stream, wall_at_zero=self._wall_at_zero, started_at=now)
        self._queue(_Begin(self.library.root / self.stream / recording_id, recording_id, header))
        for seq, card_id, card_json in self._showing():  # on screen when the session began
            self.on_card(seq, "show", card_id, card_json, start_ms)
        log.info("stream %s: recording %s", self.stream, recording_id)

    def _add_map(self, source: Source, map_id: int) -> bool:
        init = source.inits.get(map_id)
        if init is None:
            return False
        lines = ""
        if not any(track == source.name for track, _ in self._maps):
            width, height = source.size
            codecs = source.codecs or ("mp4a.40.2" if source.kind == AUDIO else DEFAULT_AVC)
            lines += track_line(TrackInfo(source.name, source.kind, source.timescale, width, height, codecs))
        lines += init_line(source.name, map_id)
        self._maps.add((source.name, map_id))
        self._queue(_Init(source.name, map_id, init, lines), len(init))
        return True

    def _queue(self, op: _Op, size: int = 0) -> None:
        self._ops.append(op)
        self._queued += size
        self._ready.set()

    # ---- the writing thread ---------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = list(self._ops)
            self._ops.clear()
            if batch:
                size = sum(len(op.data) for op in batch if isinstance(op, (_Media, _Init)))
                try:
                    await loop.run_in_executor(self._pool, self._write, batch)
                except Exception as exc:  # a bug: this recording stops, the stream and the server go on
                    log.error("stream %s: recording failed: %s: %s", self.stream, type(exc).__name__, exc)
                finally:
                    self._queued -= size
            if self._closing and not self._ops:
                return

    def _write(self, batch: list[_Op]) -> None:
        started = time.thread_time()
        try:
            self._write_batch(batch)
        finally:
            self.write_seconds += time.thread_time() - started

    def _write_batch(self, batch: list[_Op]) -> None:
        for op in batch:
            if isinstance(op, _Prepare):
                try:
                    op.folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    log.warning("stream %s: recordings directory %s unusable: %s", self.stream, op.folder, exc)
                continue
            if isinstance(op, _Begin):
                self._open(op)
                continue
            if self._failed or self._index is None:
                if isinstance(op, _End):
                    self.library.active.discard((self.stream, op.recording_id))
                continue
            try:
                self._apply(op)
            except OSError as exc:
                self.write_errors += 1
                self._failed = True
                log.warning("stream %s: recording stopped, cannot write: %s", self.stream, exc)
        if time.monotonic() - self._last_sweep > SWEEP_EVERY_S:
            self._sweep()

    def _open(self, op: _Begin) -> None:
        self._close_files()
        self._failed = False
        try:
            op.folder.mkdir(parents=True, exist_ok=True)
            self._folder = op.folder
            self._index = os.open(op.folder / INDEX, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._append(self._index, op.header.encode())
        except OSError as exc:
            self.write_errors += 1
            self._failed = True
            log.warning("stream %s: cannot start recording %s: %s", self.stream, op.recording_id, exc)

    def _apply(self, op: _Op) -> None:
        assert self._folder is not None and self._index is not None
        if isinstance(op, _Init):
            folder = self._folder / op.track
            folder.mkdir(exist_ok=True)
            (folder / init_file(op.map_id)).write_bytes(op.data)
            self._append(self._index, op.lines.encode())
        elif isinstance(op, _Media):
            msn, fd = self._files.get(op.track, (None, None))
            if fd is None or msn != op.msn:
                if fd is not None:
                    os.close(fd)  # the segment was cut short (a part dropped): it stays a prefix
                path = self._folder / op.track / segment_file(op.msn)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                self._files[op.track] = (op.msn, fd)
            self._append(fd, op.data)  # the bytes first: a line never names bytes that are not there
            self._append(self._index, op.line.encode())
            self.bytes_written += len(op.data)
        elif isinstance(op, _Close):
            _, fd = self._files.pop(op.track, (None, None))
            if fd is not None:
                os.fsync(fd)
                os.close(fd)
            self._append(self._index, op.line.encode())
            os.fsync(self._index)
        elif isinstance(op, _Line):
            self._append(self._index, op.text.encode())
        elif isinstance(op, _End):
            self._append(self._index, op.line.encode())
            self._close_files()
            self.library.active.discard((self.stream, op.recording_id))
            self._sweep()

    @staticmethod
    def _append(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _close_files(self) -> None:
        for _, fd in self._files.values():
            os.close(fd)
        self._files.clear()
        if self._index is not None:
            try:
                os.fsync(self._index)
            finally:
                os.close(self._index)
        self._index = None
        self._folder = None

    def _sweep(self) -> None:
        self._last_sweep = time.monotonic()
        try:
            self.library.sweep(time.time())
        except OSError as exc:
            log.warning("recordings: retention sweep failed: %s", exc)

    # ---- shutdown -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, object]:
        return {
            "recording": self.current,
            "bytes_written": self.bytes_written,
            "parts_dropped": self.parts_dropped,
            "write_errors": self.write_errors,
            "write_cpu_s": round(self.write_seconds, 3),
        }

    async def close(self) -> None:
        """End the recording (the server stops) and wait until everything queued is written."""
        self.end("the server stopped")
        self._closing = True
        self._ready.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._close_files)
        await loop.run_in_executor(None, self._pool.shutdown)

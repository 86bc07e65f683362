"""One HLS track's fragmented MP4 (CMAF) writer: PyAV's (FFmpeg's) mp4 muxer into memory.

We never write a box ourselves. The muxer runs with ``frag_every_frame`` (each sample its own
moof+mdat), so the packager can cut parts at any sample: FFmpeg writes a sample's fragment
when the *next* sample arrives (that is how it learns the duration), so after muxing sample n
the bytes of every sample before n are out. ``frag_discont`` with no edit list and
``avoid_negative_ts`` off keep each fragment's decode time (tfdt) on the stream's own media
clock, the same for video and audio, which is what lets a player line the two playlists up.

Used by one worker thread at a time (the stream's packaging thread); holds no locks.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import NamedTuple

import av

from transcode.frames import AAC_CHANNELS, AUDIO_CLOCK_HZ, VIDEO_CLOCK_HZ

MOVFLAGS = "empty_moov+default_base_moof+frag_every_frame+frag_discont+cmaf+skip_trailer"
MAX_GAP_S = 1.0  # a longer silence between samples ends the muxer (and the segment) rather than stretch a frame


class MuxOut(NamedTuple):
    """What writing one sample produced.

    ``flushed``: bytes of earlier samples now complete; ``closed_at``: the previous muxer was
    closed before this sample and its media ended at this pts (its last bytes are in
    ``flushed``); ``init``: a new muxer began with this sample (its ftyp+moov); ``accepted``:
    the sample was written (a video track that restarts waits for a keyframe).
    """

    flushed: bytes
    closed_at: int | None
    init: bytes | None
    accepted: bool


class _Sink(io.RawIOBase):
    """Where the muxer writes: a buffer the writer empties after every call."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


class Fmp4Writer:
    """Owns one track's muxer (video: one H.264 rung; audio: the stream's AAC) and its restarts."""

    def __init__(self, kind: str, *, width: int = 0, height: int = 0, audio_kbps: int = 96) -> None:
        self.kind = kind
        self.timescale = VIDEO_CLOCK_HZ if kind == "video" else AUDIO_CLOCK_HZ
        self._time_base = Fraction(1, self.timescale)
        self.width, self.height = width, height
        self._audio_kbps = audio_kbps
        self._max_gap = round(MAX_GAP_S * self.timescale)
        self._sink = _Sink()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.stream.Stream | None = None
        self._last_pts: int | None = None
        self._last_duration = 3000 if kind == "video" else 1024
        self._restart = False
        self.samples = 0
        self.errors = 0

    def restart(self, width: int, height: int) -> None:
        """A new picture size: the next keyframe starts a new muxer (and a new init segment)."""
        self.width, self.height = width, height
        self._restart = True

    def write(self, data: bytes, pts: int, keyframe: bool) -> MuxOut:
        closed_at: int | None = None
        flushed = b""
        last = self._last_pts
        if self._container is not None and last is not None:
            gap = pts - last
            if gap <= 0:
                return MuxOut(b"", None, None, False)  # out of order: the muxer would refuse it
            if gap > self._max_gap or (self._restart and (keyframe or self.kind != "video")):
                flushed = self.close()
                closed_at = last + self._last_duration
            else:
                self._last_duration = gap
        init: bytes | None = None
        if self._container is None:
            if self.kind == "video" and not keyframe:
                return MuxOut(flushed, closed_at, None, False)
            self._open()
        try:
            self._mux(data, pts, keyframe)
        except (av.FFmpegError, ValueError):
            self.errors += 1
            flushed += self.close()
            return MuxOut(flushed, closed_at if closed_at is not None else pts, None, False)
        out = self._sink.take()
        if self.samples == 1:
            init, out = out, b""  # the first sample of a muxer yields only ftyp+moov
        return MuxOut(flushed + out, closed_at, init, True)

    def _open(self) -> None:
        options = {
            "movflags": MOVFLAGS,
            "flush_packets": "1",
            "avoid_negative_ts": "disabled",
            "use_editlist": "0",
        }
        container = av.open(self._sink, "w", format="mp4", options=options)
        if self.kind == "video":
            stream = container.add_mux_stream("h264", width=self.width, height=self.height)
        else:
            # PyAV opens this context when muxing starts; its AudioSpecificConfig (AAC-LC, 48 kHz,
            # stereo) is the one transcode's AacEncoder was opened with, so the moov describes
            # the packets we mux.
            stream = container.add_stream("aac", rate=AUDIO_CLOCK_HZ, layout="stereo" if AAC_CHANNELS == 2 else "mono")
            stream.bit_rate = self._audio_kbps * 1000
        stream.time_base = self._time_base
        self._container, self._stream = container, stream
        self._restart = False
        self._last_pts = None
        self.samples = 0

    def _mux(self, data: bytes, pts: int, keyframe: bool) -> None:
        assert self._container is not None and self._stream is not None
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.duration = self._last_duration
        packet.time_base = self._time_base
        packet.stream = self._stream
        packet.is_keyframe = keyframe
        self._container.mux_one(packet)
        self._last_pts = pts
        self.samples += 1

    def finish(self) -> MuxOut:
        """The track went silent: end the muxer now, so its last part and segment complete."""
        last = self._last_pts
        if self._container is None or last is None:
            return MuxOut(b"", None, None, False)
        closed_at = last + self._last_duration
        return MuxOut(self.close(), closed_at, None, False)

    def close(self) -> bytes:
        """End the muxer: the last sample's fragment comes out (returned)."""
        container, self._container, self._stream = self._container, None, None
        self._last_pts = None
        if container is not None:
            try:
                container.close()
            except (av.FFmpegError, ValueError):
                self.errors += 1
        return self._sink.take()

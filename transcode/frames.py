"""The values that flow from ``transcode`` to ``relay``: encoded frames and encoder counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

VIDEO_CLOCK_HZ = 90_000
AUDIO_CLOCK_HZ = 48_000
H264 = "h264"
VP8 = "vp8"
AAC = "aac"  # the stream's HLS audio: EncodedFrame("audio", AAC, ..., codec=AAC); WebRTC keeps Opus
AAC_CHANNELS = 2  # AAC-LC, 48 kHz stereo, 1024 samples a frame: what the HLS packager declares
AAC_FRAME_SAMPLES = 1024
VP8_SUFFIX = "-vp8"  # a rung's VP8 rendition is named "480p-vp8": just another rung to the relay


class EncodedFrame(NamedTuple):
    """One encoded access unit of one rendition ("rung"), ready to packetise.

    ``data`` is Annex-B H.264 (or one VP8 frame, ``codec == VP8``) for video and one Opus packet
    for audio (or one raw AAC-LC frame, ``codec == AAC``, for HLS only). ``pts`` counts in the
    media clock of its kind (90 kHz video, 48 kHz audio) from the stream's start, so it stays
    continuous when a publisher is replaced.
    """

    kind: str  # "video" | "audio"
    rung: str
    data: bytes
    pts: int
    keyframe: bool
    codec: str = "h264"  # video: H264 or VP8 (a VP8 rung's frames); audio: "opus" implied, or AAC


@dataclass(frozen=True, slots=True)
class EncoderStats:
    """A snapshot of one rung's counters, for the API and later the metrics endpoint."""

    rung: str
    width: int
    height: int
    frames_in: int
    frames_out: int
    frames_dropped: int
    encode_calls: int
    keyframes: int
    keyframes_forced: int
    bytes_out: int
    encode_ms_total: float
    kbps: int = 0  # the target rate for the current picture (0 before the first frame)
    codec: str = "h264"
    passthrough: bool = False  # the publisher's own frames, forwarded: no encoder at all

"""relay.media.vp8: RFC 7741 payloads checked against aiortc's own VP8 depacketiser, GSO sizes,
keyframe detection; and the fan-out carrying a VP8 rung beside the H.264 ones."""

from __future__ import annotations

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from hypothesis import given
from hypothesis import strategies as st

from relay.media.fanout import Fanout
from relay.media.rtp import MAX_PAYLOAD, gso_runs
from relay.media.vp8 import descriptor_length, packetize_vp8, payload_starts_keyframe
from tests.unit.test_fanout import RecordingLink
from transcode.frames import VP8, EncodedFrame

frames = st.binary(min_size=1, max_size=20_000)


def _depacketize(payloads: list[bytes]) -> tuple[bytes, list[bool]]:
    """The frame aiortc's receiver rebuilds from our payloads, and each one's start bit."""
    out, starts = b"", []
    for payload in payloads:
        descriptor, data = VpxPayloadDescriptor.parse(payload)
        assert descriptor.partition_id == 0 and descriptor.picture_id is None
        starts.append(bool(descriptor.partition_start))
        out += data
    return out, starts


@given(frames, st.integers(min_value=2, max_value=MAX_PAYLOAD))
def test_a_frame_comes_back_whole_from_aiortcs_depacketiser(frame: bytes, max_payload: int) -> None:
    payloads = packetize_vp8(frame, max_payload)
    rebuilt, starts = _depacketize(payloads)
    assert rebuilt == frame
    assert starts == [True] + [False] * (len(payloads) - 1)  # S only on the first packet
    assert all(len(p) <= max_payload for p in payloads)


@given(frames)
def test_a_frames_packets_are_one_gso_batch_shape(frame: bytes) -> None:
    sizes = [len(p) for p in packetize_vp8(frame)]
    assert all(size == MAX_PAYLOAD for size in sizes[:-1])  # equal sizes, the last may be shorter
    assert sum(end - start for start, end in gso_runs(sizes)) == len(sizes)
    assert len(gso_runs(sizes)) <= 1 + len(sizes) // 64


def test_an_empty_frame_has_no_packets_and_a_tiny_max_payload_is_refused() -> None:
    assert packetize_vp8(b"") == []
    with pytest.raises(ValueError):
        packetize_vp8(b"x", 1)


def test_keyframes_are_told_by_the_frame_tag_of_the_first_packet() -> None:
    key, delta = bytes([0x10]) + b"\x9d\x01\x2a", bytes([0x11]) + b"\x00" * 8  # P bit 0 / 1
    assert payload_starts_keyframe(packetize_vp8(key)[0])
    assert not payload_starts_keyframe(packetize_vp8(delta)[0])
    assert not payload_starts_keyframe(packetize_vp8(key * 1000)[1])  # a continuation packet
    # What libwebrtc sends: X=1, I=1 with a 15-bit PictureID, then the frame.
    assert descriptor_length(b"\x90\x80\x81\x23" + key) == 4
    assert payload_starts_keyframe(b"\x90\x80\x81\x23" + key)
    assert not payload_starts_keyframe(b"")


@given(st.binary(max_size=12))
def test_keyframe_detection_never_raises(payload: bytes) -> None:
    payload_starts_keyframe(payload)


def test_a_vp8_rung_is_just_another_rung_to_the_fanout() -> None:
    asked: list[str] = []
    fanout = Fanout(asked.append, lambda v, r: None, clock=lambda: 0.0, wall_clock=lambda: 1.7e9)
    tracks = fanout.new_tracks("v", with_audio=False)
    tracks.video.configure(4242, 96, "0", None, None, "cname")
    fanout.attach("v", tracks, "480p-vp8")
    link = RecordingLink()
    fanout.activate("v", "video", link)
    assert asked == ["480p-vp8"]  # its own keyframe request, to the VP8 encoder
    frame = bytes([0x10]) + bytes(range(256)) * 12
    fanout.publish(EncodedFrame("video", "480p", b"\x00\x00\x00\x01\x65" + frame, 0, True))  # H.264: not its rung
    fanout.publish(EncodedFrame("video", "480p-vp8", frame, 0, True, VP8))
    packets = [p for p in link.parsed() if p.ssrc == 4242]
    assert len(packets) == 3 and [p.marker for p in packets] == [0, 0, 1]
    assert _depacketize([p.payload for p in packets])[0] == frame
    assert payload_starts_keyframe(packets[0].payload)

"""Packetisation checked against aiortc's own H.264 depacketiser; GSO runs; extensions."""

from __future__ import annotations

from aiortc.codecs.h264 import H264PayloadDescriptor
from hypothesis import given
from hypothesis import strategies as st

from relay.media.rtp import (
    GSO_MAX_BYTES,
    GSO_MAX_SEGMENTS,
    MAX_PAYLOAD,
    gso_runs,
    one_byte_extensions,
    packetize_h264,
    payload_starts_keyframe,
    split_annexb,
)


def _annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def _depacketize(payloads: list[bytes]) -> bytes:
    """What aiortc's receiver rebuilds (Annex-B) from our payloads."""
    out = b""
    for payload in payloads:
        _, data = H264PayloadDescriptor.parse(payload)
        out += data
    return out


def _nal(nal_type: int, body: bytes) -> bytes:
    # Real NAL units never hold a start code: emulation prevention keeps "00 00" from preceding
    # a byte <= 3, so a body with "00 00" turned into "00 03" is realistic.
    return bytes([0x60 | nal_type]) + body.replace(b"\x00\x00", b"\x00\x03") + b"\x01"


nal_units = st.lists(
    st.builds(_nal, st.sampled_from([1, 5, 6, 7, 8]), st.binary(min_size=0, max_size=4000)), min_size=1, max_size=6
)


@given(nal_units)
def test_packetize_round_trips_through_aiortcs_depacketizer(nals: list[bytes]) -> None:
    payloads = packetize_h264(_annexb(nals))
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert split_annexb(_depacketize(payloads)) == nals


def test_large_nal_fragments_have_equal_sizes_but_the_last() -> None:
    nal = b"\x65" + b"\x88" * 5000
    payloads = packetize_h264(_annexb([nal]))
    assert [len(p) for p in payloads[:-1]] == [MAX_PAYLOAD] * (len(payloads) - 1)
    assert payload_starts_keyframe(payloads[0]) and not payload_starts_keyframe(payloads[1])


def test_small_nals_share_one_stap_a_and_it_counts_as_a_keyframe_start() -> None:
    sps, pps, idr = b"\x67" + b"\x42" * 10, b"\x68" + b"\xce" * 4, b"\x65" + b"\x88" * 100
    payloads = packetize_h264(_annexb([sps, pps, idr]))
    assert len(payloads) == 1 and payloads[0][0] & 0x1F == 24
    assert payload_starts_keyframe(payloads[0])
    assert not payload_starts_keyframe(packetize_h264(_annexb([b"\x41" + b"\x01" * 50]))[0])


def test_access_unit_delimiters_are_not_sent() -> None:
    assert packetize_h264(_annexb([b"\x09\xf0", b"\x41\x9a"])) == [b"\x41\x9a"]


@given(st.lists(st.integers(min_value=1, max_value=1300), max_size=200))
def test_gso_runs_cover_every_packet_once_within_kernel_limits(sizes: list[int]) -> None:
    runs = gso_runs(sizes)
    assert [i for start, end in runs for i in range(start, end)] == list(range(len(sizes)))
    for start, end in runs:
        run = sizes[start:end]
        assert len(run) <= GSO_MAX_SEGMENTS and sum(run) <= GSO_MAX_BYTES
        assert all(s == run[0] for s in run[:-1]) and run[-1] <= run[0]


def test_one_byte_extensions_are_padded_words() -> None:
    block = one_byte_extensions([(3, b"\x01\x02\x03"), (1, b"0")])
    assert block[:2] == b"\xbe\xde" and len(block) % 4 == 0
    assert int.from_bytes(block[2:4], "big") == (len(block) - 4) // 4
    assert one_byte_extensions([]) == b""

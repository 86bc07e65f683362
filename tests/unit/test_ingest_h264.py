"""RFC 6184 depacketisation is the exact inverse of the relay's packetiser, and never raises
anything but ValueError on what a peer sends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.h264 import carries_idr, depacketize, starts_access_unit
from relay.media.rtp import packetize_h264

# NAL units as the packetiser leaves them: a header byte, a body that does not end in zero.
_nal = st.builds(
    lambda kind, body: bytes([0x60 | kind]) + body + b"\x01",
    st.sampled_from([1, 5, 6, 7, 8]),
    st.binary(min_size=0, max_size=4000).map(lambda b: b.replace(b"\x00\x00", b"\x00\x02")),
)


def _annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


@given(st.lists(_nal, min_size=1, max_size=8), st.integers(min_value=100, max_value=1400))
def test_depacketize_undoes_packetize(nals: list[bytes], mtu: int) -> None:
    data = _annexb(nals)
    assert depacketize(packetize_h264(data, mtu)) == data


@given(st.lists(_nal, min_size=1, max_size=8), st.integers(min_value=100, max_value=1400), st.data())
def test_a_frame_with_a_packet_missing_is_refused_or_visibly_shorter(
    nals: list[bytes], mtu: int, data: st.DataObject
) -> None:
    payloads = packetize_h264(_annexb(nals), mtu)
    if len(payloads) < 2:
        return
    gone = data.draw(st.integers(min_value=0, max_value=len(payloads) - 1))
    try:
        rebuilt = depacketize(payloads[:gone] + payloads[gone + 1 :])
    except ValueError:
        return
    assert rebuilt != _annexb(nals)  # only whole single/STAP-A packets can go without a trace


@given(st.lists(st.binary(max_size=64), max_size=6))
def test_garbage_payloads_raise_only_value_error(payloads: list[bytes]) -> None:
    try:
        depacketize(payloads)
    except ValueError:
        pass
    for payload in payloads:
        starts_access_unit(payload)
        carries_idr(payload)


def test_keyframe_packets_are_recognised_as_such() -> None:
    sps, pps = b"\x67\x42\xc0\x1f\x01", b"\x68\xce\x01"
    idr = b"\x65\x88" + b"\x11" * 3000  # first_mb_in_slice = 0: the slice header's first bit is 1
    payloads = packetize_h264(_annexb([sps, pps, idr]), 1180)
    assert starts_access_unit(payloads[0])
    assert not starts_access_unit(payloads[2])  # an FU-A continuation
    assert all(carries_idr(p) for p in payloads[1:])
    assert not starts_access_unit(payloads[1])  # an IDR slice: its SPS/PPS may have been lost before it

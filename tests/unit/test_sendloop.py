"""The compiled send loop puts on the wire exactly the bytes the Python loop does.

Two UdpLinks with SRTP sessions made from the same key, one sending through relay/media/_sendloop.c
and one through fanout.send_frame's Python loop, each to its own UDP socket on 127.0.0.1: the
datagrams received are compared byte for byte, over random frames (sizes, GSO runs), header
extension layouts (abs-send-time, mid, transport-wide numbers with every padding) and sequence
number, timestamp and transport-wide number wraps.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from relay.media import udplink
from relay.media.fanout import RtpFrame, TrackOut, _extensions, send_frame
from relay.media.rtp import MAX_PAYLOAD, packetize_h264
from relay.media.udplink import UdpLink

if udplink._sendloop is None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler on this machine: the compiled send loop is not built", allow_module_level=True)
    raise AssertionError("a C compiler is here but relay.media._sendloop is not built: pip install -e . again")

PROFILES = [(Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28), (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30)]


def _session(key: bytes, profile: int) -> Session:
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    policy.allow_repeat_tx = True  # as aiortc's: retransmissions reuse numbers
    return Session(policy)


@contextmanager
def _links(profile: int, key_len: int) -> Iterator[tuple[tuple[UdpLink, socket.socket], tuple[UdpLink, socket.socket]]]:
    key = os.urandom(key_len)
    socks: list[socket.socket] = []
    pairs = []
    for native in (True, False):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setblocking(False)
        socks += [receiver, sender]
        link = UdpLink(sender, receiver.getsockname(), _session(key, profile), native=native)
        pairs.append((link, receiver))
    try:
        assert pairs[0][0].native is not None and pairs[1][0].native is None
        yield pairs[0], pairs[1]
    finally:
        for sock in socks:
            sock.close()


def _track(link: UdpLink, layout: tuple[bool, str | None, bool], seq_off: int, ts_off: int, tseq: int) -> TrackOut:
    ast, mid, tcc = layout
    out = TrackOut("video")
    out.configure(0x1234ABCD, 102, mid, 3 if ast else None, 4 if mid else None, "cname", tcc_id=5 if tcc else None)
    out.rewriter.seq_off = seq_off
    out.rewriter.ts_off = ts_off
    out.tseq = tseq
    out.link = link
    return out


def _receive(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(2048) for _ in range(count)]


payload_lists = st.one_of(
    # What the packetiser makes of a frame (equal FU-A fragments, one GSO run or a few) ...
    st.integers(1, 60_000).map(lambda n: packetize_h264(b"\x00\x00\x00\x01\x65" + os.urandom(n))),
    # ... and any sizes at all (runs broken by longer packets, single-packet runs).
    st.lists(st.integers(1, MAX_PAYLOAD).map(os.urandom), min_size=1, max_size=70),
)
layouts = st.tuples(st.booleans(), st.sampled_from([None, "0", "1", "video", "abcdefghijklmnop"]), st.booleans())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames=st.lists(st.tuples(payload_lists, st.integers(0, 2**32 - 1)), min_size=1, max_size=3),
    layout=layouts,
    first_seq=st.integers(65_000, 66_000),  # the rung's unbounded number: every frame near a wrap
    seq_off=st.integers(0, 2**16 - 1),
    ts_off=st.integers(0, 2**32 - 1),
    tseq=st.integers(65_400, 65_535),
    cipher=st.sampled_from(PROFILES),
)
def test_compiled_and_python_loops_send_the_same_srtp_packets(
    frames: list[tuple[list[bytes], int]],
    layout: tuple[bool, str | None, bool],
    first_seq: int,
    seq_off: int,
    ts_off: int,
    tseq: int,
    cipher: tuple[int, int],
) -> None:
    with _links(*cipher) as ((native, native_rx), (python, python_rx)):
        outs = [_track(link, layout, seq_off, ts_off, tseq) for link in (native, python)]
        ext = _extensions(outs[0].ext_key, b"\x12\x34\x56")
        seq = first_seq
        for payloads, ts in frames:
            frame = RtpFrame(payloads, seq, ts, keyframe=False)
            seq += len(payloads)
            for out in outs:
                send_frame(out, frame, ext, 1.0)
            got_native = _receive(native_rx, len(payloads))
            got_python = _receive(python_rx, len(payloads))
            assert got_native == got_python
            assert native.sent == python.sent and native.dropped == python.dropped == 0
        assert outs[0].tseq == outs[1].tseq and outs[0].packets == outs[1].packets


@pytest.mark.parametrize(("profile", "key_len"), PROFILES)
def test_both_loops_refuse_an_oversized_packet_and_send_nothing(profile: int, key_len: int) -> None:
    with _links(profile, key_len) as ((native, native_rx), (python, python_rx)):
        frame = RtpFrame([os.urandom(1000), os.urandom(1400)], 10, 0, keyframe=False)
        for link, receiver in ((native, native_rx), (python, python_rx)):
            out = _track(link, (True, "0", True), 0, 0, 7)
            with pytest.raises(ValueError, match="too long"):
                send_frame(out, frame, _extensions(out.ext_key, b"\x00\x00\x00"), 1.0)
            assert out.tseq == 7 and link.sent == 0
            receiver.settimeout(0.05)
            with pytest.raises(TimeoutError):
                receiver.recv(2048)


def test_a_closed_link_drops_rather_than_sending_elsewhere() -> None:
    with _links(*PROFILES[0]) as ((native, _), _python):
        native.close()
        native.send_native(0x80, 102, 1, 2, 3, b"", -1, 0, [b"x" * 100, b"y" * 100], [(0, 2)])
        assert native.sent == 0 and native.dropped == 2

"""RTP, the pure part: H.264 packetisation, header extensions, GSO batching, sequence arithmetic.

Nothing here touches a socket or a key. The fan-out packetises each frame once per rung with
``packetize_h264`` and then, per viewer, only writes a 12-byte header in front of each shared
payload (``HEADER``), so every function here is about doing work once instead of per viewer.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
MAX_PAYLOAD = 1180  # bytes of payload per packet: ~1230 on the wire with header, extensions, SRTP tag
GSO_MAX_SEGMENTS = 64  # the kernel's UDP_MAX_SEGMENTS
GSO_MAX_BYTES = 60_000  # below the 64 KiB limit of one UDP datagram with headers

NAL_STAP_A = 24
NAL_FU_A = 28
NAL_AUD = 9
NAL_IDR = 5
NAL_SPS = 7

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit, without start codes or trailing zero bytes."""
    nals: list[bytes] = []
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[start:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def packetize_h264(data: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads (RFC 6184, packetization-mode=1) of one Annex-B access unit.

    Small NAL units that fit together go into one STAP-A; a NAL unit larger than a packet is cut
    into FU-A fragments that all have ``max_payload`` bytes except the last, so that a frame's
    packets have equal sizes and go to the kernel as one UDP GSO batch per viewer.
    """
    payloads: list[bytes] = []
    pending: list[bytes] = []  # small NAL units waiting to be aggregated
    pending_size = 1

    def flush() -> None:
        nonlocal pending_size
        if len(pending) == 1:
            payloads.append(pending[0])
        elif pending:
            nri = max(nal[0] & 0x60 for nal in pending)
            parts = [bytes([nri | NAL_STAP_A])]
            for nal in pending:
                parts.append(len(nal).to_bytes(2, "big"))
                parts.append(nal)
            payloads.append(b"".join(parts))
        pending.clear()
        pending_size = 1

    for nal in split_annexb(data):
        if nal[0] & 0x1F == NAL_AUD:
            continue
        if len(nal) <= max_payload:
            if pending_size + 2 + len(nal) > max_payload:
                flush()
            pending.append(nal)
            pending_size += 2 + len(nal)
            continue
        flush()
        indicator = (nal[0] & 0x60) | NAL_FU_A
        nal_type = nal[0] & 0x1F
        body = memoryview(nal)[1:]
        chunk = max_payload - 2
        last = len(body) - 1
        for offset in range(0, len(body), chunk):
            header = nal_type
            if offset == 0:
                header |= 0x80
            if offset + chunk > last:
                header |= 0x40
            payloads.append(bytes((indicator, header)) + body[offset : offset + chunk])
    flush()
    return payloads


def payload_starts_keyframe(payload: bytes) -> bool:
    """Whether an H.264 RTP payload begins an IDR picture or carries an SPS (clear-text check)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (NAL_IDR, NAL_SPS):
        return True
    if nal_type == NAL_STAP_A and len(payload) > 3:
        return payload[3] & 0x1F in (NAL_IDR, NAL_SPS)
    if nal_type == NAL_FU_A and len(payload) > 1:
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == NAL_IDR
    return False


def gso_runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Split packet sizes into [start, end) runs the kernel can send as one UDP GSO datagram.

    In a run every packet has the size of the first except the last, which may be smaller; a
    run holds at most GSO_MAX_SEGMENTS packets and GSO_MAX_BYTES bytes.
    """
    runs: list[tuple[int, int]] = []
    start = 0
    count = len(sizes)
    while start < count:
        size = sizes[start]
        end = start + 1
        total = size
        while end < count and end - start < GSO_MAX_SEGMENTS and total + sizes[end] <= GSO_MAX_BYTES:
            if sizes[end] == size:
                total += size
                end += 1
                continue
            if sizes[end] < size:
                end += 1  # a shorter packet may close the run
            break
        runs.append((start, end))
        start = end
    return runs


def one_byte_extensions(elements: list[tuple[int, bytes]]) -> bytes:
    """An RFC 8285 one-byte header extension block (profile 0xBEDE), padded to 32-bit words."""
    if not elements:
        return b""
    body = b"".join(bytes([(ext_id << 4) | (len(value) - 1)]) + value for ext_id, value in elements)
    body += b"\x00" * (-len(body) % 4)
    return b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body


def abs_send_time(now_s: float) -> bytes:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) of a wall-clock time."""
    return (int(now_s * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")


def ntp_timestamp(now_s: float) -> int:
    """A 64-bit NTP timestamp of a Unix time."""
    return int((now_s + 2_208_988_800) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF

"""VP8 RTP payloads (RFC 7741), the pure part: one encoded frame into equal-size packets, once per rung.

Beside ``rtp.py``'s H.264 packetiser and for the same reason: the fan-out packetises each frame
of a VP8 rung once and every viewer of it shares the payloads, only its own 12-byte RTP header
in front. That is also why the payload descriptor carries no PictureID: a PictureID would be a
per-rung counter, and a viewer joining or switching rungs would see it jump. Without one,
receivers (libwebrtc, Chromium, aiortc) order and complete frames by RTP sequence numbers and the
marker bit, which each viewer's ``RtpRewriter`` keeps continuous across joins and switches, and a
viewer only ever starts on a keyframe.
"""

from __future__ import annotations

from relay.media.rtp import MAX_PAYLOAD

# Payload descriptor, first octet: |X|R|N|S|R| PID |. S marks the first packet of a frame
# (partition 0); X=0, so no extension octets; N=0, as every frame may be a reference.
DESCRIPTOR_START = b"\x10"
DESCRIPTOR_CONTINUATION = b"\x00"


def packetize_vp8(frame: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads of one VP8 frame: a one-octet descriptor, then the frame cut into chunks.

    Every chunk but the last has ``max_payload - 1`` bytes, so a frame's packets have equal
    sizes and go to the kernel as one UDP GSO batch per viewer (``rtp.gso_runs``). An empty
    frame has no packets.
    """
    if not frame:
        return []
    if max_payload < 2:
        raise ValueError("max_payload must leave room for the descriptor and one byte")
    chunk = max_payload - 1
    view = memoryview(frame)
    payloads = [DESCRIPTOR_START + view[:chunk]]
    for offset in range(chunk, len(frame), chunk):
        payloads.append(DESCRIPTOR_CONTINUATION + view[offset : offset + chunk])
    return payloads


def descriptor_length(payload: bytes) -> int:
    """Length of a payload's RFC 7741 descriptor (1 to 6 octets), as any sender may write it."""
    if not payload:
        return 0
    length = 1
    if payload[0] & 0x80 and len(payload) > 1:  # X: an extension octet follows
        ext = payload[1]
        length += 1
        if ext & 0x80 and len(payload) > length:  # I: PictureID, 7 or 15 bits
            length += 2 if payload[length] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            length += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            length += 1
    return min(length, len(payload))


def payload_starts_keyframe(payload: bytes) -> bool:
    """Whether a VP8 RTP payload begins a keyframe: S set, partition 0, and the frame tag's
    P bit clear (RFC 6386 section 9.1: 0 means key frame)."""
    if not payload or not payload[0] & 0x10 or payload[0] & 0x07:
        return False
    start = descriptor_length(payload)
    return len(payload) > start and not payload[start] & 0x01

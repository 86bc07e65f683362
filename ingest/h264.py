"""RFC 6184 depacketisation: a publisher's H.264 RTP payloads back into Annex-B access units.

aiortc's receiver depacketises too, but only on its way to its own decoder: the encoded frames
never leave it. LiveCart needs them (the source rung forwards them as they are), so this module
is the inverse of ``relay.media.rtp.packetize_h264``. Pure and stdlib only; a malformed payload
raises ``ValueError`` (the caller counts and drops it), never anything else.

Also here: what a payload says about where it sits in an access unit (``starts_access_unit``)
and whether it carries an IDR (``carries_idr``), which the jitter buffer needs to find the
next keyframe when it skips ahead after a loss.
"""

from __future__ import annotations

START_CODE = b"\x00\x00\x00\x01"

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28
# NAL units that only ever come before the first slice of an access unit (H.264 7.4.1.2.3).
_PREFIX_TYPES = frozenset((NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD))


def nal_units(payload: bytes) -> list[bytes]:
    """The complete NAL units of one single-NAL or STAP-A payload (an FU-A yields none: see
    ``fu_a``)."""
    if not payload:
        raise ValueError("empty RTP payload")
    kind = payload[0] & 0x1F
    if 1 <= kind <= 23:
        return [payload]
    if kind == NAL_STAP_A:
        units: list[bytes] = []
        at, end = 1, len(payload)
        while at + 2 <= end:
            size = int.from_bytes(payload[at : at + 2], "big")
            at += 2
            if size == 0 or at + size > end:
                raise ValueError("STAP-A unit overruns the payload")
            units.append(payload[at : at + size])
            at += size
        if at != end or not units:
            raise ValueError("STAP-A payload has trailing bytes or no units")
        return units
    if kind == NAL_FU_A:
        return []
    raise ValueError(f"unsupported H.264 payload type {kind} (packetization-mode 1 has 1-23, 24, 28)")


def fu_a(payload: bytes) -> tuple[bool, bool, int, bytes]:
    """An FU-A fragment as (start, end, reconstructed NAL header byte, fragment body)."""
    if len(payload) < 3 or payload[0] & 0x1F != NAL_FU_A:
        raise ValueError("not an FU-A fragment")
    header = payload[1]
    start, end = bool(header & 0x80), bool(header & 0x40)
    if start and end:
        raise ValueError("FU-A fragment with both start and end bits")
    return start, end, (payload[0] & 0xE0) | (header & 0x1F), payload[2:]


def depacketize(payloads: list[bytes]) -> bytes:
    """One access unit, Annex-B, from the RTP payloads of one frame in sequence order.

    Raises ``ValueError`` when the payloads do not make whole NAL units (an FU-A without its
    start or end, a unit interrupted by another), so a frame with a hole is never passed on.
    """
    out: list[bytes] = []
    fragments: list[bytes] | None = None  # the FU-A being rebuilt
    for payload in payloads:
        if payload and payload[0] & 0x1F == NAL_FU_A:
            start, end, nal_header, body = fu_a(payload)
            if start:
                if fragments is not None:
                    raise ValueError("FU-A started before the previous one ended")
                fragments = [bytes((nal_header,)), body]
            elif fragments is None:
                raise ValueError("FU-A continuation without its start")
            else:
                fragments.append(body)
            if end:
                out += (START_CODE, *fragments)
                fragments = None
            continue
        if fragments is not None:
            raise ValueError("FU-A interrupted before its end")
        for unit in nal_units(payload):
            out += (START_CODE, unit)
    if fragments is not None:
        raise ValueError("FU-A without its end")
    if not out:
        raise ValueError("no NAL units in the frame")
    return b"".join(out)


def _first_nal(payload: bytes) -> tuple[int, bytes]:
    """(type, bytes after the NAL header) of the first NAL unit a payload starts or carries."""
    kind = payload[0] & 0x1F
    if kind == NAL_STAP_A and len(payload) > 3:
        return payload[3] & 0x1F, payload[4:]
    if kind == NAL_FU_A and len(payload) > 2:
        return (payload[1] & 0x1F, payload[2:]) if payload[1] & 0x80 else (-1, b"")
    return kind, payload[1:]


def starts_access_unit(payload: bytes) -> bool:
    """Whether this payload surely begins an access unit, judged from the payload alone.

    Used when the packet before it is missing, so the sequence numbers cannot tell. True only
    when its first NAL unit is one that precedes slices (AUD, SEI, SPS, PPS): a slice with
    ``first_mb_in_slice`` 0 begins a picture, but its parameter sets may have been in the lost
    packet before it, and a keyframe without them is no keyframe to a viewer who joins on it.
    """
    if not payload:
        return False
    kind, _ = _first_nal(payload)
    return kind in _PREFIX_TYPES


def carries_idr(payload: bytes) -> bool:
    """Whether this payload holds (part of) an IDR slice: a frame with one is a keyframe."""
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind == NAL_FU_A:
        return len(payload) > 1 and payload[1] & 0x1F == NAL_IDR
    if kind == NAL_STAP_A:
        try:
            return any(unit[0] & 0x1F == NAL_IDR for unit in nal_units(payload))
        except ValueError:
            return False
    return kind == NAL_IDR


def _ue(bits: str, at: int) -> tuple[int, int]:
    """One exp-Golomb unsigned value from a bit string; (value, next position)."""
    zeros = 0
    while at + zeros < len(bits) and bits[at + zeros] == "0":
        zeros += 1
    if at + 2 * zeros + 1 > len(bits):
        raise ValueError("slice header cut short")
    value = int(bits[at + zeros : at + 2 * zeros + 1], 2) - 1
    return value, at + 2 * zeros + 1


def has_b_slices(annexb: bytes) -> bool:
    """Whether an access unit holds a B slice (``slice_type`` 1 or 6): such a stream reorders
    frames, which WebRTC viewers do not expect, so it is never forwarded as it is."""
    for unit in annexb.split(b"\x00\x00\x01"):
        if not unit or unit[0] & 0x1F not in (NAL_SLICE, NAL_IDR):
            continue
        head = unit[1:12].replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention
        bits = "".join(f"{byte:08b}" for byte in head)
        try:
            _, at = _ue(bits, 0)  # first_mb_in_slice
            slice_type, _ = _ue(bits, at)
        except ValueError:
            continue
        if slice_type % 5 == 1:
            return True
    return False

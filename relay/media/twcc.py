"""Transport-wide congestion control feedback (RTCP RTPFB fmt 15), the pure part.

A browser that negotiated the transport-wide sequence number header extension and
``transport-cc`` feedback tells the sender, every ~50-100 ms, when each stamped packet arrived
(or that it did not). That is what send-side bandwidth estimation needs; aiortc parses these
packets as if they were NACKs (its ``RtcpRtpfbPacket`` reads every fmt as a NACK list), so the
raw feedback is picked out of the RTCP compound here instead (``feedback_blocks``).

Wire format (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1): base sequence
number, status count, a 24-bit signed reference time in 64 ms units, a feedback counter; then
16-bit packet status chunks (run-length, or a vector of 1-bit or 2-bit symbols); then one
receive delta per received packet (1 byte unsigned or 2 bytes signed, in 250 us units).
Nothing here raises anything but ``BadFeedback`` on what a peer sends.
"""

from __future__ import annotations

from typing import NamedTuple

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
FMT_TRANSPORT_CC = 15
DELTA_US = 250  # receive deltas are multiples of 250 us
REFERENCE_US = 64_000  # the reference time is a multiple of 64 ms

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2


class BadFeedback(ValueError):
    """A transport-cc packet that does not parse (the viewer's problem: it is dropped, counted)."""


class TccFeedback(NamedTuple):
    """One feedback packet: the 16-bit sequence number of each packet it reports, in order, with
    its arrival time in microseconds on the receiver's clock (None: not received)."""

    base_seq: int
    feedback_count: int
    arrivals: list[tuple[int, int | None]]


def feedback_blocks(compound: bytes) -> list[bytes]:
    """The FCI of every transport-cc packet in an (unprotected) RTCP compound packet."""
    blocks: list[bytes] = []
    pos = 0
    size = len(compound)
    while pos + 4 <= size:
        first = compound[pos]
        length = (int.from_bytes(compound[pos + 2 : pos + 4], "big") + 1) * 4
        if first >> 6 != 2 or pos + length > size:
            break  # not RTCP version 2, or truncated: stop rather than guess
        if compound[pos + 1] == RTCP_RTPFB and first & 0x1F == FMT_TRANSPORT_CC and length >= 20:
            blocks.append(compound[pos + 12 : pos + length])  # after header, sender and media SSRC
        pos += length
    return blocks


def parse_feedback(fci: bytes) -> TccFeedback:
    """Decode one transport-cc FCI (``feedback_blocks``); BadFeedback if it is inconsistent."""
    if len(fci) < 8:
        raise BadFeedback("transport-cc feedback shorter than its 8-byte header")
    base = int.from_bytes(fci[0:2], "big")
    count = int.from_bytes(fci[2:4], "big")
    reference = int.from_bytes(fci[4:7], "big", signed=True)
    feedback_count = fci[7]
    symbols: list[int] = []
    pos = 8
    while len(symbols) < count:
        if pos + 2 > len(fci):
            raise BadFeedback("transport-cc status chunks end early")
        chunk = int.from_bytes(fci[pos : pos + 2], "big")
        pos += 2
        if not chunk & 0x8000:  # run length: one symbol, many times
            symbols.extend([(chunk >> 13) & 0x3] * (chunk & 0x1FFF))
        elif not chunk & 0x4000:  # 14 one-bit symbols
            symbols.extend((chunk >> shift) & 0x1 for shift in range(13, -1, -1))
        else:  # 7 two-bit symbols
            symbols.extend((chunk >> shift) & 0x3 for shift in range(12, -1, -2))
    del symbols[count:]
    arrivals: list[tuple[int, int | None]] = []
    at = reference * REFERENCE_US
    for n, symbol in enumerate(symbols):
        seq = (base + n) & 0xFFFF
        if symbol == NOT_RECEIVED:
            arrivals.append((seq, None))
            continue
        if symbol == SMALL_DELTA:
            if pos + 1 > len(fci):
                raise BadFeedback("transport-cc receive deltas end early")
            at += fci[pos] * DELTA_US
            pos += 1
        elif symbol == LARGE_DELTA:
            if pos + 2 > len(fci):
                raise BadFeedback("transport-cc receive deltas end early")
            at += int.from_bytes(fci[pos : pos + 2], "big", signed=True) * DELTA_US
            pos += 2
        else:
            raise BadFeedback("transport-cc status symbol 3 is reserved")
        arrivals.append((seq, at))
    return TccFeedback(base, feedback_count, arrivals)


def build_feedback(base_seq: int, reference: int, feedback_count: int, deltas: list[int | None]) -> bytes:
    """The FCI for packets ``base_seq``, ``base_seq + 1``, ...: ``deltas`` are each packet's receive
    delta in 250 us units (None: lost). For tests and test peers; picks run-length chunks for long
    runs and 1-bit vectors where they fit, as receivers do, so a parser meets every chunk kind."""
    symbols = [NOT_RECEIVED if d is None else SMALL_DELTA if 0 <= d <= 255 else LARGE_DELTA for d in deltas]
    chunks = bytearray()
    n = 0
    while n < len(symbols):
        run = 1
        while n + run < len(symbols) and symbols[n + run] == symbols[n] and run < 0x1FFF:
            run += 1
        if run >= 14:
            chunks += ((symbols[n] << 13) | run).to_bytes(2, "big")
            n += run
            continue
        part = symbols[n : n + 14]
        if len(part) == 14 and max(part) <= SMALL_DELTA:
            chunks += (0x8000 | sum(s << (13 - i) for i, s in enumerate(part))).to_bytes(2, "big")
            n += 14
            continue
        part = symbols[n : n + 7]
        chunks += (0xC000 | sum(s << (12 - 2 * i) for i, s in enumerate(part))).to_bytes(2, "big")
        n += 7
    body = bytearray()
    for d, s in zip(deltas, symbols, strict=True):
        if d is None:
            continue
        body += d.to_bytes(1, "big") if s == SMALL_DELTA else d.to_bytes(2, "big", signed=True)
    head = (base_seq & 0xFFFF).to_bytes(2, "big") + len(deltas).to_bytes(2, "big")
    head += (reference & 0xFFFFFF).to_bytes(3, "big") + bytes([feedback_count & 0xFF])
    fci = head + bytes(chunks) + bytes(body)
    return fci + b"\x00" * (-len(fci) % 4)


def feedback_packet(sender_ssrc: int, media_ssrc: int, fci: bytes) -> bytes:
    """A whole RTCP transport-cc packet around ``fci`` (padded to 32-bit words)."""
    body = sender_ssrc.to_bytes(4, "big") + media_ssrc.to_bytes(4, "big") + fci
    return bytes([0x80 | FMT_TRANSPORT_CC, RTCP_RTPFB]) + (len(body) // 4).to_bytes(2, "big") + body

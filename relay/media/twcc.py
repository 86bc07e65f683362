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
Nothing here raises anything but ``BadFeedback`` on what a peer sends. This runs for every
feedback packet of every transport-cc viewer (~10-20 a second each), so it avoids per-packet
Python work where it can.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import accumulate
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
    """One feedback packet, kept in the compact form the estimator walks batch by batch.

    ``status`` has one symbol per reported packet, in sequence order from ``base_seq``
    (``NOT_RECEIVED``, ``SMALL_DELTA`` or ``LARGE_DELTA``); ``ticks`` has the arrival time of each
    received packet, in order, in 250 us units on the receiver's clock. Per-packet tuples would be
    one Python object per packet per viewer: ``arrivals`` builds them only for tests and tools.
    """

    base_seq: int
    feedback_count: int
    status: bytes
    ticks: list[int]

    @property
    def arrivals(self) -> list[tuple[int, int | None]]:
        """Each reported packet's 16-bit number and arrival time in microseconds (None: lost)."""
        times = iter(self.ticks)
        return [
            ((self.base_seq + n) & 0xFFFF, None if s == NOT_RECEIVED else next(times) * DELTA_US)
            for n, s in enumerate(self.status)
        ]

    @classmethod
    def of(cls, base_seq: int, arrivals_us: list[int | None], feedback_count: int = 0) -> TccFeedback:
        """Feedback for packets ``base_seq``, ``base_seq + 1``, ... arriving at ``arrivals_us``
        (microseconds, None: lost), rounded to 250 us as on the wire: for tests and simulations."""
        status = bytes(NOT_RECEIVED if a is None else SMALL_DELTA for a in arrivals_us)
        ticks = [round(a / DELTA_US) for a in arrivals_us if a is not None]
        return cls(base_seq & 0xFFFF, feedback_count, status, ticks)


def merged(feedbacks: list[TccFeedback]) -> list[TccFeedback]:
    """Consecutive feedback packets (each starting where the one before ended, as a receiver
    sends them) joined into one, so that they are walked once; others are left as they are."""
    if len(feedbacks) < 2:
        return feedbacks
    out: list[TccFeedback] = []
    run = [feedbacks[0]]
    end = (feedbacks[0].base_seq + len(feedbacks[0].status)) & 0xFFFF
    for feedback in feedbacks[1:]:
        if feedback.base_seq == end:
            run.append(feedback)
        else:
            out.append(_join(run))
            run = [feedback]
        end = (feedback.base_seq + len(feedback.status)) & 0xFFFF
    out.append(_join(run))
    return out


def _join(run: list[TccFeedback]) -> TccFeedback:
    if len(run) == 1:
        return run[0]
    ticks: list[int] = []
    for feedback in run:
        ticks += feedback.ticks
    return TccFeedback(run[0].base_seq, run[-1].feedback_count, b"".join(f.status for f in run), ticks)


def feedback_blocks(compound: bytes) -> list[bytes]:
    """The FCI of every transport-cc packet in an (unprotected) RTCP compound packet."""
    return split_compound(compound)[0]


def split_compound(compound: bytes) -> tuple[list[bytes], bytes]:
    """The FCI of every transport-cc packet in an (unprotected) RTCP compound packet, and the
    compound without them (what is left for aiortc, which would parse each one as a NACK list
    with a Python loop per bit; a browser sends transport-cc alone, so that is usually b"")."""
    blocks: list[bytes] = []
    pos = 0
    size = len(compound)
    kept_from = 0
    rest: list[bytes] = []
    while pos + 4 <= size:
        first = compound[pos]
        length = (int.from_bytes(compound[pos + 2 : pos + 4], "big") + 1) * 4
        if first >> 6 != 2 or pos + length > size:
            break  # not RTCP version 2, or truncated: stop rather than guess (aiortc gets the rest)
        if compound[pos + 1] == RTCP_RTPFB and first & 0x1F == FMT_TRANSPORT_CC:
            if length >= 20:
                blocks.append(compound[pos + 12 : pos + length])  # after header, sender and media SSRC
            if pos > kept_from:
                rest.append(compound[kept_from:pos])
            kept_from = pos + length
        pos += length
    if not blocks and kept_from == 0:
        return blocks, compound
    rest.append(compound[kept_from:])
    return blocks, b"".join(rest)


def _vector(chunk: int) -> bytes:
    """The symbols of a status vector chunk (14 one-bit or 7 two-bit symbols)."""
    if not chunk & 0x4000:
        return bytes((chunk >> shift) & 0x1 for shift in range(13, -1, -1))
    return bytes((chunk >> shift) & 0x3 for shift in range(12, -1, -2))


def _symbols(chunk: int, cache: dict[int, bytes] = {}) -> bytes:  # noqa: B006 - a constant table, filled lazily
    # Receivers use a handful of chunk patterns; decoding each once keeps parsing per chunk, not
    # per packet. At most 2**15 entries of 7-14 bytes (the vector chunks), so it stays bounded.
    symbols = cache.get(chunk)
    if symbols is None:
        symbols = cache[chunk] = _vector(chunk)
    return symbols


def parse_feedback(fci: bytes) -> TccFeedback:
    """Decode one transport-cc FCI (``feedback_blocks``); BadFeedback if it is inconsistent.

    Written for the hot RTCP path: status chunks are decoded per chunk (a run is one bytes
    repetition, a vector one table lookup) and, when every delta is a small one, the arrival
    times are a running sum over the delta bytes done in C (``itertools.accumulate``).
    """
    if len(fci) < 8:
        raise BadFeedback("transport-cc feedback shorter than its 8-byte header")
    base, count, word = _HEAD.unpack_from(fci)
    reference = word >> 8
    if reference & 0x800000:  # a 24-bit signed number
        reference -= 0x1000000
    feedback_count = word & 0xFF
    size = len(fci)
    chunk = (fci[8] << 8) | fci[9] if size >= 10 else 0
    if size >= 10 and not chunk & 0x8000 and (chunk & 0x1FFF) >= count:
        # One run covers every packet (all received, small deltas: the common case).
        status = _RUNS[(chunk >> 13) & 0x3] * count
        pos = 10
    else:
        parts: list[bytes] = []
        have = 0
        pos = 8
        while have < count:
            if pos + 2 > size:
                raise BadFeedback("transport-cc status chunks end early")
            chunk = (fci[pos] << 8) | fci[pos + 1]
            pos += 2
            if not chunk & 0x8000:  # run length: one symbol, many times
                part = _RUNS[(chunk >> 13) & 0x3] * (chunk & 0x1FFF)
            else:
                part = _symbols(chunk)
            parts.append(part)
            have += len(part)
        status = b"".join(parts)[:count]
    if LARGE_DELTA + 1 in status:
        raise BadFeedback("transport-cc status symbol 3 is reserved")
    received = count - status.count(NOT_RECEIVED)
    start = reference * (REFERENCE_US // DELTA_US)
    large = status.count(LARGE_DELTA)
    if not large:
        if pos + received > size:
            raise BadFeedback("transport-cc receive deltas end early")
        ticks = list(accumulate(fci[pos : pos + received], initial=start))
        del ticks[0]
        return TccFeedback(base, feedback_count, status, ticks)
    if pos + received + large > size:
        raise BadFeedback("transport-cc receive deltas end early")
    # Some 2-byte deltas (a gap over 63.75 ms, reordering): the runs of 1-byte deltas between
    # them are still C-level running sums, so the Python steps are one per large delta.
    symbols = status.replace(_RUNS[NOT_RECEIVED], b"") if received < count else status
    ticks = []
    at = start
    r = 0
    while True:
        k = symbols.find(LARGE_DELTA, r)
        n = (len(symbols) if k < 0 else k) - r
        if n:
            run = list(accumulate(fci[pos : pos + n], initial=at))
            at = run[-1]
            del run[0]
            ticks += run
            pos += n
        if k < 0:
            return TccFeedback(base, feedback_count, status, ticks)
        at += int.from_bytes(fci[pos : pos + 2], "big", signed=True)
        pos += 2
        ticks.append(at)
        r = k + 1


_HEAD = struct.Struct("!HHI")  # base sequence number, status count, reference time (24) + feedback count (8)
_RUNS = (bytes([NOT_RECEIVED]), bytes([SMALL_DELTA]), bytes([LARGE_DELTA]), bytes([LARGE_DELTA + 1]))


def build_feedback(base_seq: int, reference: int, feedback_count: int, deltas: Sequence[int | None]) -> bytes:
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

"""What a viewer's RTCP says, in LiveCart's terms: bandwidth estimate, loss, keyframe requests.

The fast path (``relay.media.takeover``) receives every RTCP packet a viewer sends about one of our
SSRCs; NACKs go to the fan-out's history, everything else is interpreted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from relay.media.rtp import ntp_timestamp


@dataclass(frozen=True, slots=True)
class Feedback:
    """One piece of viewer feedback: a REMB, a receiver report (loss, and the round trip when the
    report answers one of our sender reports), or a keyframe request."""

    remb_bps: float | None = None
    loss: float | None = None
    keyframe_request: bool = False
    rtt_s: float | None = None


def _rtt(lsr: int, dlsr: int, now_s: float | None) -> float | None:
    """RFC 3550 round trip: now minus the echoed sender report time minus the receiver's delay."""
    if not lsr or now_s is None:
        return None
    now = (ntp_timestamp(now_s) >> 16) & 0xFFFFFFFF
    rtt = ((now - lsr - dlsr) & 0xFFFFFFFF) / 65536
    return rtt if rtt < 10 else None  # a wrapped or bogus report says nothing


def interpret(packet: Any, media_ssrc: int, now_s: float | None = None) -> Feedback | None:
    """Turn one RTCP packet about ``media_ssrc`` into Feedback (None if it says nothing to us);
    ``now_s`` (wall clock, the one our sender reports carry) lets a receiver report give the RTT."""
    if isinstance(packet, RtcpPsfbPacket):
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            return Feedback(keyframe_request=True)
        if packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return None
            if not ssrcs or media_ssrc in ssrcs:
                return Feedback(remb_bps=float(bitrate))
        return None
    if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
        for report in packet.reports:
            if report.ssrc == media_ssrc:
                return Feedback(loss=report.fraction_lost / 256, rtt_s=_rtt(report.lsr, report.dlsr, now_s))
    return None

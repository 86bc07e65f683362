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


@dataclass(frozen=True, slots=True)
class Feedback:
    """One piece of viewer feedback. Exactly one of the fields is set."""

    remb_bps: float | None = None
    loss: float | None = None
    keyframe_request: bool = False


def interpret(packet: Any, media_ssrc: int) -> Feedback | None:
    """Turn one RTCP packet about ``media_ssrc`` into Feedback (None if it says nothing to us)."""
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
                return Feedback(loss=report.fraction_lost / 256)
    return None

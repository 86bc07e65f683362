"""What a viewer's RTCP says, in LiveCart's terms: bandwidth estimate, loss, keyframe requests.

aiortc handles RTCP inside ``RTCRtpSender`` and exposes none of it; with pre-encoded packets it
even ignores PLI/FIR. Until the fast send path owns RTCP, ``observe_sender`` taps the sender's
RTCP handler so the relay sees each packet before aiortc does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpSender
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


def observe_sender(sender: RTCRtpSender, on_feedback: Callable[[Feedback], None]) -> None:
    """Call ``on_feedback`` for every RTCP packet the viewer sends about ``sender``'s stream."""
    original: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet
    media_ssrc: int = sender._ssrc

    async def tapped(packet: Any) -> None:
        feedback = interpret(packet, media_ssrc)
        if feedback is not None:
            on_feedback(feedback)
        await original(packet)

    sender._handle_rtcp_packet = tapped  # type: ignore[method-assign]

"""Hand a viewer's aiortc senders over to the fast path once the connection is up.

aiortc negotiates everything (ICE, DTLS, SRTP keys, SSRCs, payload types, header extension ids,
the data channel). Its ``RTCRtpSender`` would then pull frames through a per-packet coroutine
chain; instead, at the moment aiortc starts a sender we take the negotiated parameters, route
the viewer's RTCP for that SSRC to LiveCart (NACK, PLI/FIR, REMB, receiver reports) and tell the
fan-out that the viewer's link is ready. The aiortc sender never starts, so it owns no task.

This relies on aiortc 1.16 internals (``RTCRtpSender.send``, ``RTCDtlsTransport._tx_srtp`` and
``_register_rtp_sender``, aioice's nominated pair); pyproject pins aiortc to 1.16.*, and the
end-to-end tests fail loudly if any of them changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket

from relay.media.fanout import TrackOut
from relay.media.feedback import Feedback, interpret
from relay.media.rtp import ABS_SEND_TIME_URI, MID_URI

log = logging.getLogger(__name__)


class RtcpSink:
    """Receives the viewer's RTCP about one of our SSRCs (aiortc routes it here by SSRC)."""

    def __init__(
        self, ssrc: int, on_nack: Callable[[list[int]], None], on_feedback: Callable[[Feedback], None]
    ) -> None:
        self._ssrc = ssrc
        self._on_nack = on_nack
        self._on_feedback = on_feedback

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket):
            if packet.fmt == RTCP_RTPFB_NACK and packet.lost:
                self._on_nack(list(packet.lost))
            return
        feedback = interpret(packet, self._ssrc)
        if feedback is not None:
            self._on_feedback(feedback)


def take_over(
    sender: RTCRtpSender,
    out: TrackOut,
    *,
    on_ready: Callable[[Any], None],
    on_nack: Callable[[list[int]], None],
    on_feedback: Callable[[Feedback], None],
) -> None:
    """When aiortc starts ``sender``, configure ``out`` instead and call ``on_ready(dtls)``."""

    async def send(parameters: RTCRtpSendParameters) -> None:
        dtls = sender.transport
        codec = parameters.codecs[0]
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        out.configure(
            ssrc=sender._ssrc,
            pt=codec.payloadType or 0,
            mid=parameters.muxId,
            abs_send_time_id=ids.get(ABS_SEND_TIME_URI),
            mid_id=ids.get(MID_URI),
            cname=parameters.rtcp.cname,
        )
        dtls._register_rtp_sender(RtcpSink(sender._ssrc, on_nack, on_feedback), parameters)
        on_ready(dtls)

    sender.send = send  # type: ignore[method-assign]

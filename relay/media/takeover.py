"""Hand a viewer's aiortc senders over to the fast path once the connection is up.

aiortc negotiates everything (ICE, DTLS, SRTP keys, SSRCs, payload types, header extension ids,
the data channel). Its ``RTCRtpSender`` would then pull frames through a per-packet coroutine
chain; instead, at the moment aiortc starts a sender we take the negotiated parameters, route
the viewer's RTCP for that SSRC to LiveCart (NACK, PLI/FIR, REMB, receiver reports) and tell the
fan-out that the viewer's link is ready. The aiortc sender never starts, so it owns no task.

Transport-wide congestion control: aiortc's own caps list neither the transport-wide sequence
number extension nor ``transport-cc`` feedback, so its answer drops both from a browser's offer
(and the browser's bandwidth estimate then stays near what it receives). ``keep_transport_cc``
puts them back into a viewer's negotiated parameters, between the offer and the answer, for
that one peer connection only (publishers are unaffected: aiortc would not send the feedback).
aiortc also parses every RTPFB packet as a NACK (a Python loop per bit of the feedback), so
``take_over`` takes transport-cc packets out of the decrypted RTCP compound before aiortc sees it.

This relies on aiortc 1.16 internals (``RTCRtpSender.send``, ``RTCDtlsTransport._tx_srtp``,
``_register_rtp_sender`` and ``_handle_rtcp_data``, transceivers' ``_codecs`` and
``_headerExtensions``, aioice's nominated pair); pyproject pins aiortc to 1.16.*, and the
end-to-end tests fail loudly if any of them changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpRtpfbPacket
from aiortc.sdp import SessionDescription

from relay.media.fanout import TrackOut
from relay.media.feedback import Feedback, interpret
from relay.media.rtp import ABS_SEND_TIME_URI, MID_URI
from relay.media.twcc import TRANSPORT_CC_URI, split_compound

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
        feedback = interpret(packet, self._ssrc, time.time())
        if feedback is not None:
            self._on_feedback(feedback)


def keep_transport_cc(pc: RTCPeerConnection) -> int:
    """After the offer is applied: keep the offer's transport-wide sequence number extension and
    ``transport-cc`` feedback on each video transceiver whose offer had both. Returns how many."""
    remote = pc.remoteDescription
    if remote is None:
        return 0
    try:
        offered = {m.rtp.muxId: m for m in SessionDescription.parse(remote.sdp).media}
    except Exception:  # aiortc accepted this offer; if its parser trips on it now, keep what it has
        return 0
    kept = 0
    for transceiver in pc.getTransceivers():
        media = offered.get(transceiver.mid) if transceiver.mid is not None else None
        if transceiver.kind != "video" or media is None:
            continue
        ext = next((e for e in media.rtp.headerExtensions if e.uri == TRANSPORT_CC_URI), None)
        with_tcc = {c.payloadType for c in media.rtp.codecs if any(f.type == "transport-cc" for f in c.rtcpFeedback)}
        if ext is None or not with_tcc:
            continue
        codecs = [c for c in transceiver._codecs if c.payloadType in with_tcc]
        if not codecs:
            continue
        for codec in codecs:
            if not any(f.type == "transport-cc" for f in codec.rtcpFeedback):
                codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
        if not any(e.uri == TRANSPORT_CC_URI for e in transceiver._headerExtensions):
            transceiver._headerExtensions.append(RTCRtpHeaderExtensionParameters(id=ext.id, uri=TRANSPORT_CC_URI))
        kept += 1
    return kept


def _route_transport_cc(dtls: Any, on_tcc: Callable[[bytes], None]) -> None:
    """Hand transport-cc feedback in the viewer's decrypted RTCP to ``on_tcc`` before aiortc (which
    would read it as a NACK) routes the rest; once per DTLS transport."""
    if getattr(dtls, "_livecart_tcc", False):
        return
    original: Callable[[bytes], Awaitable[None]] = dtls._handle_rtcp_data

    async def handle(data: bytes) -> None:
        blocks, rest = split_compound(data)  # a walk over a few RTCP headers
        for fci in blocks:
            on_tcc(fci)
        if rest:  # a browser sends transport-cc alone (reduced-size RTCP): then aiortc has nothing
            await original(rest)

    dtls._handle_rtcp_data = handle
    dtls._livecart_tcc = True


def take_over(
    sender: RTCRtpSender,
    out: TrackOut,
    *,
    on_ready: Callable[[Any], None],
    on_nack: Callable[[list[int]], None],
    on_feedback: Callable[[Feedback], None],
    on_tcc: Callable[[bytes], None] | None = None,
) -> None:
    """When aiortc starts ``sender``, configure ``out`` instead and call ``on_ready(dtls)``.

    ``on_tcc(fci)`` gets each transport-cc feedback packet once the negotiation kept transport-cc
    for this stream (``keep_transport_cc``)."""

    async def send(parameters: RTCRtpSendParameters) -> None:
        dtls = sender.transport
        codec = parameters.codecs[0]
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        tcc_id = ids.get(TRANSPORT_CC_URI)
        if tcc_id is not None and not any(f.type == "transport-cc" for f in codec.rtcpFeedback):
            tcc_id = None  # numbers nobody reports on would be wasted bytes
        rtx = next(
            (
                c
                for c in parameters.codecs
                if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == codec.payloadType
            ),
            None,
        )
        out.configure(
            ssrc=sender._ssrc,
            pt=codec.payloadType or 0,
            mid=parameters.muxId,
            abs_send_time_id=ids.get(ABS_SEND_TIME_URI),
            mid_id=ids.get(MID_URI),
            cname=parameters.rtcp.cname,
            tcc_id=tcc_id if on_tcc is not None else None,
            rtx=(rtx.payloadType, sender._rtx_ssrc) if rtx is not None and rtx.payloadType is not None else None,
        )
        if tcc_id is not None and on_tcc is not None:
            _route_transport_cc(dtls, on_tcc)
        dtls._register_rtp_sender(RtcpSink(sender._ssrc, on_nack, on_feedback), parameters)
        on_ready(dtls)

    sender.send = send  # type: ignore[method-assign]

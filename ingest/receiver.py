"""LiveCart's own receive path for a publisher's H.264 video, in place of aiortc's.

aiortc's ``RTCRtpReceiver`` only hands out decoded frames, NACKs a gap once, and asks for a
keyframe only when its 512-packet buffer overflows: behind 2 % loss viewers froze for 2 s,
and after an outage they got a burst of stale frames. Here aiortc still does ICE, DTLS, SRTP,
RTCP receiver reports, the receiver-side bandwidth estimate it sends back as REMB (without it a
browser publisher's encoder only creeps up from 300 kbit/s by 8 % a second, on loss reports
alone) and the audio; each video RTP packet it has decrypted goes to a
``JitterBuffer`` instead (NACK, re-NACK, deadline, PLI, skip to a keyframe), and whole encoded
frames come out: to ``on_encoded`` (the source rung forwards them as they are) and to a
``VideoDecoder`` thread (the transcoded rungs). A codec other than H.264 (a VP8 publisher) stays
on aiortc's path, packet by packet.

This relies on aiortc 1.16 internals (``RTCRtpReceiver._handle_rtp_packet``, its codec and RTX
maps, ``_send_rtcp_nack``/``_send_rtcp_pli``); pyproject pins aiortc to 1.16.*, and the
end-to-end tests fail loudly if any of them changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiortc.codecs import is_rtx
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from ingest.jitter import AssembledFrame, JitterBuffer, ReceiveStats


class VideoReceiver:
    """Owns one publisher's video jitter buffer and the task that applies its deadlines.

    ``install`` routes the receiver's RTP here; ``run`` is the deadline task (its owner cancels
    it). ``on_frame`` gets each whole frame, in order, on the loop.
    """

    def __init__(self, receiver: RTCRtpReceiver, on_frame: Callable[[AssembledFrame], None]) -> None:
        self._receiver = receiver
        self._on_frame = on_frame
        self.buffer = JitterBuffer()
        self._wake = asyncio.Event()
        self._ssrc: int | None = None
        self._waiting_until: float | None = None  # when ``run`` wakes next (None: on a packet only)
        self.codec: str | None = None  # the negotiated video codec, once a packet has said it
        self._aiortc_handle = receiver._handle_rtp_packet

    def install(self) -> None:
        # Per instance: other receivers in the process keep aiortc's behaviour.
        self._receiver._handle_rtp_packet = self._handle  # type: ignore[method-assign]

    def request_keyframe(self) -> None:
        """Something downstream (the decoder) lost the picture chain: ask the publisher."""
        self.buffer.keyframes.want()
        self._wake.set()

    def stats(self) -> ReceiveStats:
        return self.buffer.stats()

    async def _handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        receiver: Any = self._receiver
        codecs = receiver._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        if is_rtx(codec) or codec.name == "H264":
            await self._estimate(packet, arrival_time_ms)
        if is_rtx(codec):
            original_ssrc = receiver._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
                return
            target = codecs[apt]
            if target.name != "H264":
                await self._aiortc_handle(packet, arrival_time_ms)
                return
            self._count_for_reports(packet, codec.clockRate)
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        elif codec.name != "H264":
            self.codec = codec.name
            await self._aiortc_handle(packet, arrival_time_ms)  # VP8: aiortc depacketises and decodes it
            return
        else:
            self._count_for_reports(packet, codec.clockRate)
        self.codec = "H264"
        self._ssrc = packet.ssrc
        now = asyncio.get_running_loop().time()
        frames = self.buffer.push(packet.sequence_number, packet.timestamp, packet.marker == 1, packet.payload, now)
        await self._tell_publisher(now)
        for frame in frames:
            self._on_frame(frame)
        wake_at = self.buffer.next_wakeup()
        if wake_at is not None and (self._waiting_until is None or wake_at < self._waiting_until):
            self._wake.set()  # a deadline earlier than the one ``run`` sleeps towards

    async def _estimate(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """Feed aiortc's receiver-side estimator, as its own receive path does, and send its REMB."""
        receiver: Any = self._receiver
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
        if estimator is None or packet.extensions.abs_send_time is None:
            return
        remb = estimator.add(
            abs_send_time=packet.extensions.abs_send_time,
            arrival_time_ms=arrival_time_ms,
            payload_size=len(packet.payload) + packet.padding_size,
            ssrc=packet.ssrc,
        )
        if remb is not None and rtcp_ssrc is not None:
            feedback = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
            with contextlib.suppress(ConnectionError):
                await receiver._send_rtcp(feedback)

    def _count_for_reports(self, packet: RtpPacket, clock_rate: int) -> None:
        """Keep aiortc's receiver statistics, which its RTCP task turns into receiver reports."""
        streams = self._receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(clock_rate)
        stats.add(packet)

    async def _tell_publisher(self, now: float) -> None:
        ssrc = self._ssrc
        if ssrc is None:
            return
        lost = self.buffer.nacks(now)
        with contextlib.suppress(ConnectionError):
            if lost:
                await self._receiver._send_rtcp_nack(ssrc, lost)
            if self.buffer.keyframe_due(now):
                await self._receiver._send_rtcp_pli(ssrc)

    async def run(self) -> None:
        """Wake at the buffer's next deadline (or a new packet): re-NACK, give up, skip, PLI."""
        loop = asyncio.get_running_loop()
        while True:
            wake_at = self._waiting_until = self.buffer.next_wakeup()
            # At least 1 ms: what is due now was just done, so never spin on a time in the past.
            timeout = None if wake_at is None else max(0.001, wake_at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            now = loop.time()
            frames = self.buffer.poll(now)
            await self._tell_publisher(now)
            for frame in frames:
                self._on_frame(frame)

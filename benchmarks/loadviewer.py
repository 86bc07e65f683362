"""A cheap load-test viewer: a full WHEP handshake, then counting packets without decoding.

aiortc does the handshake (ICE, DTLS, SRTP keys, optional data channel). Then the viewer stays
cheap: its receivers never start (no decoder threads), and every SRTP packet is seen once by
``RtpCounter`` straight from the socket (the RTP header is clear text in SRTP): count, bytes,
sequence gaps, timestamps. Until the first keyframe, and then for one packet in
``VERIFY_EVERY``, the packet is decrypted and parsed to prove the stream is real.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket
from yarl import URL

from benchmarks.benchstats import StreamCount
from relay.media.rtp import payload_starts_keyframe

VERIFY_EVERY = 200  # decrypt and parse one packet in this many after the first keyframe
_HEADER = struct.Struct("!BBHII")


class JoinFailed(Exception):
    """The viewer could not join; ``reason`` is the failure class reported by the benchmark."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class RtpCounter:
    """Counts one viewer's RTP packets per SSRC from the encrypted datagrams."""

    def __init__(self, video_pts: set[int], unprotect: Any, posted_at: float) -> None:
        self.video_pts = video_pts
        self._unprotect = unprotect
        self.posted_at = posted_at
        self.streams: dict[int, StreamCount] = {}
        self.first_keyframe_at: float | None = None
        self.first_video_at: float | None = None  # the first video packet, decrypted or not
        self.verified = 0
        self.verify_failed = 0
        self.verify_errors: dict[str, int] = {}  # why decryption or parsing failed -> count
        self._until_verify = VERIFY_EVERY

    def on_plaintext(self, data: bytes) -> None:
        """A packet aiortc already decrypted (it arrived before the socket tap was in place)."""
        self._count(data, plaintext=True)

    def on_datagram(self, data: bytes) -> None:
        """An SRTP packet straight from the socket."""
        self._count(data, plaintext=False)

    def _count(self, data: bytes, plaintext: bool) -> None:
        # RTP and RTCP only (RFC 7983's first byte 128..191): the same socket carries STUN
        # (consent checks) and DTLS (the data channel), which are neither counted nor verified.
        if len(data) < 12 or not 127 < data[0] < 192:
            return
        _, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if 192 <= b1 <= 223:  # RTCP (sender reports): not counted
            return
        stream = self.streams.get(ssrc)
        fresh = stream is None
        if stream is None:
            stream = self.streams[ssrc] = StreamCount((b1 & 0x7F) in self.video_pts, seq, ts)
        stream.add(seq, ts, len(data))
        if stream.video and self.first_video_at is None:
            self.first_video_at = time.monotonic()
        if fresh and not plaintext and not stream.video:
            # libsrtp learns a stream's rollover counter from the first packet it sees: a stream
            # first sampled after its sequence numbers wrapped (audio, 50 packets a second, is
            # sampled every few seconds) would fail every later check for a counter off by one.
            self._decrypt(data)
            return
        if plaintext:
            self.verified += 1
            if self.first_keyframe_at is None and stream.video and _is_keyframe(RtpPacket.parse(data)):
                self.first_keyframe_at = time.monotonic()
            return
        if self.first_keyframe_at is None:
            if stream.video and _is_keyframe(self._decrypt(data)):
                self.first_keyframe_at = time.monotonic()
            return
        self._until_verify -= 1
        if self._until_verify <= 0:
            self._until_verify = VERIFY_EVERY
            self._decrypt(data)

    def _decrypt(self, data: bytes) -> RtpPacket | None:
        try:
            packet = RtpPacket.parse(self._unprotect(data))
        except Exception as exc:
            self.verify_failed += 1
            reason = f"{type(exc).__name__}: {exc}"[:80]
            self.verify_errors[reason] = self.verify_errors.get(reason, 0) + 1
            return None
        self.verified += 1
        return packet


def _is_keyframe(packet: RtpPacket | None) -> bool:
    return packet is not None and payload_starts_keyframe(packet.payload)


def _video_payload_types(answer: str) -> set[int]:
    types: set[int] = set()
    in_video = False
    for line in answer.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
            if in_video:
                types.update(int(p) for p in line.split()[3:] if p.isdigit())
    return types


class LoadViewer:
    """One cheap viewer of ``{base}/whep/{stream}``."""

    def __init__(
        self,
        base: str,
        stream: str,
        *,
        rendition: str | None,
        audio: bool = True,
        data_channel: bool = False,
        token: str | None = None,
    ) -> None:
        query = f"?rendition={rendition}" if rendition else ""
        self.url = f"{base}/whep/{stream}{query}"
        self.token = token
        self.audio = audio
        self.data_channel = data_channel
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location: str | None = None
        self.counter: RtpCounter | None = None
        self.messages: list[tuple[float, str]] = []
        self.on_message: Any = None  # called with (arrival time.monotonic(), text) when set
        self.channel: Any = None  # the "cards" data channel, when asked for
        self.posted_at = 0.0
        self.answered_at: float | None = None  # the WHEP answer back
        self.connected_at: float | None = None  # ICE and DTLS done
        self._tapped: Any = None

    async def join(self, http: aiohttp.ClientSession, timeout_s: float) -> None:
        """Handshake and wait for the connection; raises JoinFailed with a reason class."""
        pc = self.pc
        pc.addTransceiver("video", direction="recvonly")
        if self.audio:
            pc.addTransceiver("audio", direction="recvonly")
        if self.data_channel:
            channel = self.channel = pc.createDataChannel("cards")

            @channel.on("message")
            def _message(message: str | bytes) -> None:
                text = message if isinstance(message, str) else message.decode()
                if self.on_message is not None:
                    self.on_message(time.monotonic(), text)
                else:
                    self.messages.append((time.time(), text))

        for transceiver in pc.getTransceivers():
            transceiver.receiver.receive = _no_receive  # type: ignore[method-assign]
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.posted_at = time.monotonic()
        try:
            async with http.post(self.url, data=pc.localDescription.sdp, headers=headers) as res:
                body = await res.text()
                if res.status != 201:
                    raise JoinFailed(f"http {res.status}", body.strip()[:200])
                self.location = str(res.url.join(URL(res.headers.get("Location", ""))))
            self.answered_at = time.monotonic()
        except aiohttp.ClientError as exc:
            raise JoinFailed("http error", str(exc)) from None
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                if pc.connectionState == "connected" and self.connected_at is None:
                    self.connected_at = time.monotonic()
                connected.set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        dtls = pc.getTransceivers()[0].receiver.transport
        srtp = lambda data: dtls._rx_srtp.unprotect(data)  # noqa: E731 - the keys exist once connected
        counter = self.counter = RtpCounter(_video_payload_types(body), srtp, self.posted_at)

        async def early(data: bytes, arrival_time_ms: int) -> None:  # before the socket tap
            counter.on_plaintext(data)  # aiortc decrypted it already

        dtls._handle_rtp_data = early  # type: ignore[method-assign]
        try:
            await asyncio.wait_for(connected.wait(), timeout_s)
        except TimeoutError:
            raise JoinFailed("ice/dtls timeout", f"not connected within {timeout_s:g} s") from None
        if pc.connectionState != "connected":
            raise JoinFailed("ice/dtls failed", f"connection {pc.connectionState}")
        self._tap(dtls)

    def _tap(self, dtls: Any) -> None:
        """Read RTP straight off the socket: no ICE queue, no coroutine per packet."""
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return
        protocol = pair.protocol
        original = protocol.datagram_received
        on_datagram = self.counter.on_datagram if self.counter else None
        if on_datagram is None:
            return

        def datagram_received(data: bytes, addr: tuple[str, int]) -> None:
            if data and 127 < data[0] < 192 and not 192 <= data[1] <= 223:
                on_datagram(data)
            else:
                original(data, addr)  # STUN consent checks, DTLS (data channel), RTCP

        protocol.datagram_received = datagram_received
        self._tapped = protocol

    def ice_transport(self) -> Any:
        """The asyncio datagram transport of the viewer's ICE socket (tests stall or close it)."""
        assert self._tapped is not None, "not connected"
        return self._tapped.transport

    async def leave(self, http: aiohttp.ClientSession | None) -> bool:
        """End the session; True when the server acknowledged the DELETE (or there was none to send)."""
        acknowledged = http is None or self.location is None
        if not acknowledged:
            assert http is not None and self.location is not None
            for _attempt in range(2):  # a pooled keep-alive connection may be stale: DELETE is idempotent
                try:
                    async with http.delete(self.location) as res:
                        await res.read()
                        acknowledged = res.status in (200, 204, 404)
                    break
                except aiohttp.ClientError:
                    continue
        try:
            await self.pc.close()
        except Exception:  # closing a half-open aiortc connection may raise; nothing to keep
            pass
        return acknowledged


async def _no_receive(parameters: Any) -> None:
    """Stands in for RTCRtpReceiver.receive: no decoder thread, no RTCP task."""

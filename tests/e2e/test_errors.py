"""Every bad request gets its status and a one-line reason, and healthy sessions keep going."""

from __future__ import annotations

import re

import aiohttp
from aiortc import RTCPeerConnection

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import LOCKED_KEY, PUBLISH_KEY, SECOND_KEY, Server


async def _sample_offer(direction: str = "sendonly") -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction=direction)
    pc.addTransceiver("audio", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def _without_video(sdp: str) -> str:
    head, *sections = re.split(r"(?=^m=)", sdp, flags=re.M)
    return head + "".join(s for s in sections if not s.startswith("m=video"))


def _only_vp9(sdp: str) -> str:
    def video(section: str) -> str:
        if not section.startswith("m=video"):
            return section
        lines = section.splitlines(keepends=True)
        lines[0] = re.sub(r"(UDP/TLS/RTP/SAVPF) .*", r"\1 98", lines[0].rstrip("\r\n")) + "\r\n"
        kept = [ln for ln in lines[1:] if not re.match(r"a=(rtpmap|fmtp|rtcp-fb):", ln)]
        return lines[0] + "".join(kept) + "a=rtpmap:98 VP9/90000\r\n"

    head, *sections = re.split(r"(?=^m=)", sdp, flags=re.M)
    return head + "".join(video(s) for s in sections)


def _many_mlines(sdp: str) -> str:
    return sdp + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n" * 300


async def _request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: str | bytes = b"",
    *,
    token: str | None = None,
    content_type: str = "application/sdp",
) -> tuple[int, str, dict[str, str]]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, data=body, headers=headers) as res:
        return res.status, await res.text(), dict(res.headers)


async def test_bad_requests_get_a_status_and_reason_and_harm_no_healthy_session(
    server: Server, http: aiohttp.ClientSession
) -> None:
    base = server.base
    offer = await _sample_offer()
    view_offer = await _sample_offer("recvonly")
    healthy_pub = WhipPublisher(base, "live", PUBLISH_KEY, width=320, height=240)
    await healthy_pub.start(http)
    healthy = WhepViewer(base, "live")
    await healthy.start(http)
    locked_pub = WhipPublisher(base, "locked", LOCKED_KEY, width=160, height=120, audio=False)
    busy_pub = WhipPublisher(base, "second", SECOND_KEY, width=160, height=120, audio=False)
    tiny_viewer = WhepViewer(base, "tiny", read_pattern=False)
    try:
        await healthy.wait_for(lambda r: len(r.frames) >= 10, timeout=15)
        await locked_pub.start(http)
        await busy_pub.start(http)
        await tiny_viewer.start(http)
        whip, whep = f"{base}/whip/live", f"{base}/whep/live"
        cases: list[tuple[str, int, tuple[str, str, str | bytes], dict[str, object]]] = [
            ("garbage body", 400, ("POST", whip, "hello"), {"token": PUBLISH_KEY}),
            ("JSON body", 400, ("POST", whip, '{"sdp": 1}'), {"token": PUBLISH_KEY}),
            ("offer with no media", 400, ("POST", whip, offer.split("m=")[0]), {"token": PUBLISH_KEY}),
            ("300 m-lines", 400, ("POST", whip, _many_mlines(offer)), {"token": PUBLISH_KEY}),
            ("no video m-line", 400, ("POST", whip, _without_video(offer)), {"token": PUBLISH_KEY}),
            ("no codec in common", 400, ("POST", whip, _only_vp9(offer)), {"token": PUBLISH_KEY}),
            ("WHEP garbage", 400, ("POST", whep, "v=0\r\nnonsense"), {}),
            ("missing token", 401, ("POST", whip, offer), {}),
            ("wrong token", 403, ("POST", whip, offer), {"token": "not-the-key-at-all-123"}),
            ("unknown stream (WHIP)", 404, ("POST", f"{base}/whip/nope", offer), {"token": PUBLISH_KEY}),
            ("unknown stream (WHEP)", 404, ("POST", f"{base}/whep/nope", view_offer), {}),
            ("unknown session", 404, ("DELETE", f"{whip}/{'A' * 32}", b""), {}),
            ("locked stream is live", 409, ("POST", f"{base}/whip/locked", offer), {"token": LOCKED_KEY}),
            ("oversized body", 413, ("POST", whip, offer + "a=x:" + "y" * 40_000 + "\r\n"), {"token": PUBLISH_KEY}),
            (
                "wrong content type",
                415,
                ("POST", whip, offer),
                {"token": PUBLISH_KEY, "content_type": "application/json"},
            ),
            ("publisher limit", 503, ("POST", f"{base}/whip/tiny", offer), {"token": SECOND_KEY}),
            ("viewer limit", 503, ("POST", f"{base}/whep/tiny", view_offer), {}),
            ("WHEP offer that only sends", 400, ("POST", whep, offer), {}),
        ]
        frames_before = len(healthy.record.frames)
        for name, status, (method, url, body), kwargs in cases:
            got, text, headers = await _request(http, method, url, body, **kwargs)  # type: ignore[arg-type]
            assert got == status, f"{name}: expected {status}, got {got}: {text!r}"
            reason = text.strip()
            assert reason and "\n" not in reason and "Traceback" not in reason, f"{name}: {text!r}"
            if status == 503:
                assert "Retry-After" in headers, name
            if status == 401:
                assert "WWW-Authenticate" in headers
        # The healthy viewer never stopped decoding while all of that went on.
        target = frames_before + 30
        await healthy.wait_for(lambda r: len(r.frames) >= target, timeout=10)
        assert {(f.width, f.height) for f in healthy.record.frames} == {(320, 240)}
    finally:
        await tiny_viewer.stop(http)
        await busy_pub.stop(http)
        await locked_pub.stop(http)
        await healthy.stop(http)
        await healthy_pub.stop(http)
    log = server.log()
    assert "-> 413" in log and "-> 403" in log  # each error leaves a log line
    assert PUBLISH_KEY not in log and LOCKED_KEY not in log  # keys are never logged

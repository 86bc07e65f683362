"""RFC 9725 PATCH (trickle ICE, ICE restart), ETag/If-Match, CORS for it, the forgiving DELETE
and offers with mDNS candidates, against a running server with real aiortc peers."""

from __future__ import annotations

import re
import time

import aiohttp
from aiortc import RTCSessionDescription
from yarl import URL

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, api, wait_until
from tests.fixtures import sdp

FRAG = "application/trickle-ice-sdpfrag"


def _fragment(ufrag: str, pwd: str, candidates: list[str], *, end: bool = False, mid: str = "0") -> str:
    lines = [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", "m=video 9 UDP/TLS/RTP/SAVPF 0", f"a=mid:{mid}"]
    lines += [f"a={c}" for c in candidates]
    if end:
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


def _credentials(offer: str) -> tuple[str, str]:
    ufrag = re.search(r"a=ice-ufrag:(\S+)", offer)
    pwd = re.search(r"a=ice-pwd:(\S+)", offer)
    assert ufrag and pwd
    return ufrag.group(1), pwd.group(1)


def _without_candidates(offer: str) -> tuple[str, list[str]]:
    """The offer as a trickling client POSTs it (no candidates), and the candidates it holds back."""
    lines = offer.splitlines(keepends=True)
    held = [ln.strip()[2:] for ln in lines if ln.startswith("a=candidate:")]
    kept = [ln for ln in lines if not ln.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "".join(kept), held


async def _patch(
    http: aiohttp.ClientSession, url: str, body: str, if_match: str | None, content_type: str = FRAG
) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if if_match is not None:
        headers["If-Match"] = if_match
    async with http.patch(url, data=body, headers=headers) as res:
        return res.status, await res.text()


async def test_a_viewer_that_trickles_its_candidates_gets_204s_and_plays(
    server: Server, http: aiohttp.ClientSession
) -> None:
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)
    viewer = WhepViewer(server.base, "live", data_channel=False)
    viewer.pc.addTransceiver("video", direction="recvonly")
    viewer.pc.addTransceiver("audio", direction="recvonly")
    viewer.pc.on("track", viewer._on_track)
    try:
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        offer, held = _without_candidates(viewer.pc.localDescription.sdp)
        assert held, "aiortc gathered no candidates to trickle"
        async with http.post(viewer.url, data=offer, headers={"Content-Type": "application/sdp"}) as res:
            answer = await res.text()
            assert res.status == 201, answer
            etag = res.headers["ETag"]
            assert "ETag" in res.headers["Access-Control-Expose-Headers"]
            url = str(res.url.join(URL(res.headers["Location"])))
        viewer.location = url
        ufrag, pwd = _credentials(offer)
        # medooze's whip-whep: no If-Match on plain trickle; MediaMTX's reader: If-Match: *.
        assert await _patch(http, url, _fragment(ufrag, pwd, held[:1]), None) == (204, "")
        mdns = "candidate:1 1 udp 2113937151 0b7f5e7c-9f3a-4c7e-8a59-0b0c2f6f1e11.local 50000 typ host"
        assert await _patch(http, url, _fragment(ufrag, pwd, [mdns]), "*") == (204, "")
        assert await _patch(http, url, _fragment(ufrag, pwd, held[1:], end=True), etag) == (204, "")
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await viewer.wait_for(lambda r: len(r.frames) >= 10, timeout=20)
        counters = [f.counter for f in viewer.record.frames]
        assert counters == sorted(counters) and counters[-1] > counters[0]

        status, reason = await _patch(http, url, _fragment(ufrag, pwd, held), '"not-our-etag"')
        assert status == 412 and "ETag" in reason
        status, reason = await _patch(http, url, _fragment("newufrag", "new-password-0123456789", []), None)
        assert status == 428 and "If-Match" in reason
        status, reason = await _patch(http, url, _fragment("newufrag", "new-password-0123456789", []), "*")
        assert status == 422 and "ICE restart is not supported" in reason
        status, _ = await _patch(http, url, _fragment(ufrag, pwd, held), None, content_type="application/sdp")
        assert status == 415
        status, reason = await _patch(http, url, "a=candidate:garbage\r\n", None)
        assert status == 400 and "candidate" in reason
        status, _ = await _patch(http, f"{server.base}/whep/live/{'x' * 32}", _fragment(ufrag, pwd, []), None)
        assert status == 404
        # none of that disturbed the session
        seen = len(viewer.record.frames)
        await viewer.wait_for(lambda r: len(r.frames) >= seen + 10, timeout=10)
    finally:
        assert await viewer.stop(http) == 200
        await publisher.stop(http)


async def test_a_publisher_asking_for_an_ice_restart_gets_422_and_keeps_publishing(
    server: Server, http: aiohttp.ClientSession
) -> None:
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)
    viewer = WhepViewer(server.base, "live", data_channel=False)
    try:
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 5, timeout=20)
        assert publisher.location is not None
        fragment = _fragment("restartufrag", "restart-password-012345678", [], mid="0")
        status, reason = await _patch(http, publisher.location, fragment, "*")
        assert status == 422, reason
        assert reason.strip() == (
            "ICE restart is not supported by this server (aiortc cannot change a running "
            "session's ICE credentials): POST a new offer instead"
        )
        seen = len(viewer.record.frames)
        await viewer.wait_for(lambda r: len(r.frames) >= seen + 10, timeout=10)  # still publishing
    finally:
        await viewer.stop(http)
        await publisher.stop(http)


async def test_delete_after_the_client_closed_its_peer_connection_gets_200(
    server: Server, http: aiohttp.ClientSession
) -> None:
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)
    viewer = WhepViewer(server.base, "live", data_channel=False)
    try:
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 3, timeout=20)
        await viewer.stop(None, delete=False)  # closes its peer connection first, as whip-whep does

        async def viewer_gone() -> bool:
            return (await api(http, server))["sessions"]["viewers"] == 0  # type: ignore[index,no-any-return]

        await wait_until(viewer_gone, timeout=10)
        assert viewer.location is not None
        async with http.delete(viewer.location) as res:
            assert res.status == 200 and (await res.text()).strip() == "session had already ended"
        async with http.delete(viewer.location.replace("/whep/live/", "/whep/second/")) as res:
            assert res.status == 404  # the record is per stream: another stream's URL is not it
        async with http.delete(f"{server.base}/whep/live/{'y' * 32}") as res:
            assert res.status == 404
    finally:
        await publisher.stop(http)


async def test_the_preflight_allows_patch_and_if_match(server: Server, http: aiohttp.ClientSession) -> None:
    headers = {"Origin": "http://player.example", "Access-Control-Request-Method": "PATCH"}
    async with http.options(f"{server.base}/whep/live/{'z' * 32}", headers=headers) as res:
        assert res.status == 204
        methods = {m.strip() for m in res.headers["Access-Control-Allow-Methods"].split(",")}
        assert {"POST", "PATCH", "DELETE"} <= methods
        assert "if-match" in res.headers["Access-Control-Allow-Headers"].lower()
        exposed = {h.strip().lower() for h in res.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"etag", "location", "link"} <= exposed


def _with_mdns_candidates(offer: str) -> str:
    """A Chromium offer as it comes from a page: host candidates hidden behind mDNS names."""
    out = []
    for n, line in enumerate(offer.splitlines(keepends=True)):
        if line.startswith("a=candidate:") and " udp " in line:
            parts = line.split(" ")
            parts[4] = f"{n:08x}-1c2d-4e5f-8a9b-0c1d2e3f4a5b.local"
            line = " ".join(parts)
        out.append(line)
    return "".join(out)


async def test_an_offer_with_mdns_candidates_is_answered_as_fast_as_one_without(
    server: Server, http: aiohttp.ClientSession
) -> None:
    captured = sdp("whep-test-offer.sdp")  # Chromium 156's WHEP offer
    base, _ = _without_candidates(captured)
    mdns = _with_mdns_candidates(captured)
    assert mdns.count(".local ") >= 2  # one resolution each, ~1 s apiece, if aioice saw them

    async def answer_time(offer: str) -> float:
        started = time.perf_counter()
        headers = {"Content-Type": "application/sdp"}
        async with http.post(f"{server.base}/whep/live", data=offer, headers=headers) as res:
            body = await res.text()
            assert res.status == 201, body
            location = res.headers["Location"]
        elapsed = time.perf_counter() - started
        async with http.delete(f"{server.base}{location}") as res:
            assert res.status == 200
        return elapsed

    # The median of a few of each, interleaved, so that a busy moment on a shared machine hits both.
    plain, with_mdns = [], []
    for _ in range(3):
        plain.append(await answer_time(base))
        with_mdns.append(await answer_time(mdns))
    plain.sort()
    with_mdns.sort()
    print(f"answer times: plain {plain}, with mDNS {with_mdns}")
    assert with_mdns[1] < plain[1] + 0.2, (with_mdns, plain)

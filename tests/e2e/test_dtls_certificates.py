"""DTLS certificates real publishers present: OBS 30.2's X.509 v2 one is accepted when its
fingerprint matches the offer; a mismatch ends the session at once, in one log line (issue 12)."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from benchmarks.peers import WhepViewer, WhipPublisher
from ingest.peer import FINGERPRINT_MISMATCH
from tests.e2e.conftest import PUBLISH_KEY, Server, api, wait_until
from tests.e2e.helpers import use_certificate, x509_v2_certificate


def _assert_clean(log: str) -> None:
    assert "Traceback" not in log, log[-5000:]
    assert "never retrieved" not in log, log[-5000:]


async def test_publisher_with_an_x509_v2_certificate_reaches_viewers(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=320, height=180, audio=False)
        use_certificate(publisher.pc, x509_v2_certificate())
        viewer = WhepViewer(server.base, "live", audio=False)
        try:
            await publisher.start(http)
            await viewer.start(http)
            await viewer.wait_for(lambda r: sum(f.counter >= 0 for f in r.frames) >= 30, 15)
            counters = [f.counter for f in viewer.record.frames if f.counter >= 0]
            # The publisher's own numbered frames, in order: its media really came through DTLS-SRTP.
            assert counters == sorted(counters) and counters[-1] - counters[0] >= 29, counters
            assert {(f.width, f.height) for f in viewer.record.frames} == {(320, 180)}
            print(f"viewer decoded {len(counters)} numbered frames, {counters[0]}..{counters[-1]}")
        finally:
            await viewer.stop(http)
            await publisher.stop(http)
        _assert_clean(server.log())


async def test_fingerprint_mismatch_ends_the_session_within_1s_in_one_line(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=320, height=180, audio=False)
        use_certificate(publisher.pc, x509_v2_certificate(wrong_sha256=True))
        await wait_until(lambda: _held(http, server, None), timeout=10)  # earlier tests' sessions gone
        baseline = await _holdings(http, server)
        try:
            await publisher.start(http)  # returns once the answer is applied: ICE and DTLS start now
            assert publisher.location is not None
            session = publisher.location.rsplit("/", 1)[-1][:8]
            started = asyncio.get_running_loop().time()

            async def gone() -> bool:
                sessions = (await api(http, server))["sessions"]
                assert isinstance(sessions, dict)
                # The session and its peer connection (sockets, tasks) are all released.
                return bool(sessions["publishers"] == 0 and sessions["peer_connections"] == 0)

            # The setup deadline is 10 s here: ending within 1 s means the failure itself ended it.
            await wait_until(gone, timeout=1.0, interval=0.05)
            elapsed = asyncio.get_running_loop().time() - started
            print(f"session {session} ended {elapsed * 1000:.0f} ms after the answer")
            await wait_until(lambda: _stream_offline(http, server), timeout=1.0, interval=0.05)
        finally:
            await publisher.stop(http, delete=False)
        # Nothing leaked: the server's UDP sockets, threads and tasks are back to what they were.
        await wait_until(lambda: _held(http, server, baseline), timeout=5)
        log = server.log()
        lines = [line for line in log.splitlines() if session in line and "fingerprint" in line]
        assert len(lines) == 1, lines
        assert FINGERPRINT_MISMATCH in lines[0] and re.search(r"publisher live/[\w-]+: ending", lines[0]), lines
        _assert_clean(log)


async def _stream_offline(http: aiohttp.ClientSession, server: Server) -> bool:
    async with http.get(f"{server.base}/api/streams/live") as res:
        return bool((await res.json())["state"] == "offline")


HOLDINGS = ("session_tasks", "peer_connections", "udp_sockets", "threads", "asyncio_tasks")


async def _holdings(http: aiohttp.ClientSession, server: Server) -> dict[str, int]:
    snapshot = await api(http, server)
    counts = {**snapshot["sessions"], **snapshot["process"]}  # type: ignore[dict-item]
    return {key: int(counts[key]) for key in HOLDINGS}


async def _held(http: aiohttp.ClientSession, server: Server, baseline: dict[str, int] | None) -> bool:
    """No session left (``baseline`` None), or nothing held beyond ``baseline``."""
    now = await _holdings(http, server)
    if baseline is None:
        return now["peer_connections"] == 0 and now["session_tasks"] == 0
    return all(now[key] <= baseline[key] for key in HOLDINGS)

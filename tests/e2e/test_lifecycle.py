"""Sessions release everything they held, whether they end by DELETE or by vanishing."""

from __future__ import annotations

import aiohttp

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server, api, wait_until


async def _cycle(server: Server, http: aiohttp.ClientSession) -> None:
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=320, height=240)
    await publisher.start(http)
    viewers = [WhepViewer(server.base, "live", read_pattern=False) for _ in range(4)]
    for viewer in viewers:
        await viewer.start(http)
    for viewer in viewers:
        await viewer.wait_for(lambda r: len(r.frames) >= 5, timeout=15)
    snapshot = await api(http, server)
    sessions = snapshot["sessions"]
    assert isinstance(sessions, dict)
    assert sessions["viewers"] == 4 and sessions["publishers"] == 1
    # Half leave politely (DELETE -> 200), half just vanish (close, no DELETE).
    assert await viewers[0].stop(http) == 200
    assert await viewers[1].stop(http) == 200
    await viewers[2].stop(None, delete=False)
    await viewers[3].stop(None, delete=False)
    assert await publisher.stop(http) == 200


async def _counts(http: aiohttp.ClientSession, server: Server) -> dict[str, int]:
    snapshot = await api(http, server)
    sessions, process = snapshot["sessions"], snapshot["process"]
    assert isinstance(sessions, dict) and isinstance(process, dict)
    return {**sessions, **process}


async def test_server_holds_nothing_after_everyone_left(server: Server, http: aiohttp.ClientSession) -> None:
    await _cycle(server, http)  # warm-up: the stream's encoder threads start once and stay
    await wait_until(lambda: _drained(http, server), timeout=10)
    baseline = await _counts(http, server)
    await _cycle(server, http)
    await wait_until(lambda: _back_to(http, server, baseline), timeout=10)
    final = await _counts(http, server)
    assert final["peer_connections"] == 0 and final["session_tasks"] == 0
    assert final["publishers"] == 0 and final["viewers"] == 0


async def _drained(http: aiohttp.ClientSession, server: Server) -> bool:
    counts = await _counts(http, server)
    return counts["peer_connections"] == 0 and counts["session_tasks"] == 0


async def _back_to(http: aiohttp.ClientSession, server: Server, baseline: dict[str, int]) -> bool:
    counts = await _counts(http, server)
    keys = ("peer_connections", "session_tasks", "publishers", "viewers", "udp_sockets", "threads", "asyncio_tasks")
    return all(counts[k] <= baseline[k] for k in keys)

"""Interop (issue 7): Google's libwebrtc (npm @roamhq/wrtc) publishes VP8 over WHIP."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import PUBLISH_KEY, Server

INTEROP = Path(__file__).resolve().parents[1] / "interop"


async def test_a_libwebrtc_publisher_reaches_viewers_with_its_own_frames(
    server: Server, http: aiohttp.ClientSession
) -> None:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "@roamhq" / "wrtc").is_dir():
        pytest.skip("needs Node.js and @roamhq/wrtc (./dev.sh test runs npm ci in tests/interop)")
    process = await asyncio.create_subprocess_exec(
        node, str(INTEROP / "wrtc_publisher.js"), f"{server.base}/whip/live", PUBLISH_KEY, "8",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    viewer = WhepViewer(server.base, "live", data_channel=False, audio=False)
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert json.loads(line) == {"published": True}, line
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 30, 20)
        counters = [f.counter for f in viewer.record.frames]
        assert counters == sorted(counters) and counters[-1] - counters[0] >= 25  # libwebrtc's frames, in order
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await viewer.stop(http)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-3000:]
    end = json.loads(out.decode().strip().splitlines()[-1])
    assert end["state"] == "connected" and end["deleteStatus"] == 200

"""Interop (issue 7): werift, a TypeScript WebRTC stack, watches a LiveCart stream over WHEP."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from benchmarks.peers import WhipPublisher
from tests.e2e.conftest import PUBLISH_KEY, Server

INTEROP = Path(__file__).resolve().parents[1] / "interop"


async def test_a_werift_viewer_gets_media_from_a_keyframe_on_and_the_cards_channel(
    server: Server, http: aiohttp.ClientSession
) -> None:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "werift").is_dir():
        pytest.skip("needs Node.js and werift (./dev.sh test runs npm ci in tests/interop)")
    publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, h264=True)
    await publisher.start(http)
    try:
        process = await asyncio.create_subprocess_exec(
            node, str(INTEROP / "werift_viewer.js"), f"{server.base}/whep/live", "4",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-3000:]
        result = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        await publisher.stop(http)
    assert result["state"] == "connected"
    assert result["counts"]["video"] > 60 and result["counts"]["audio"] > 50, result["counts"]
    assert result["keyframeStart"]  # its first video packet begins an IDR (or carries the SPS)
    assert result["messages"][:2] == ["stream", "snapshot"]  # the cards channel greets it
    assert result["deleteStatus"] == 200

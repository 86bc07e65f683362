"""Interop (issue 7): GStreamer's webrtcbin publishes over WHIP (VP8 colour bars, Opus).

GStreamer's DTLS certificate is RSA; aiortc alone offers only ECDSA cipher suites, and the
handshake then fails with "no shared cipher" (``ingest.peer`` adds the RSA suites).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import PUBLISH_KEY, Server

INTEROP = Path(__file__).resolve().parents[1] / "interop"
SYSTEM_PYTHON = "/usr/bin/python3"  # GStreamer's Python bindings come from Debian, not PyPI


def _gstreamer_ready() -> str | None:
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
        "from gi.repository import Gst; Gst.init(None);"
        "assert all(Gst.ElementFactory.find(e) for e in ('webrtcbin', 'vp8enc', 'nicesrc', 'opusenc'))"
    )
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return str(exc)
    return None if done.returncode == 0 else done.stderr.strip().splitlines()[-1:][0] if done.stderr else "failed"


async def test_a_gstreamer_webrtcbin_publisher_with_an_rsa_certificate_reaches_viewers(
    server: Server, http: aiohttp.ClientSession
) -> None:
    problem = _gstreamer_ready()
    if problem is not None:
        pytest.skip(f"needs GStreamer 1.22 webrtcbin with Python bindings (./dev.sh test installs them): {problem}")
    process = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON, str(INTEROP / "gst_publisher.py"), f"{server.base}/whip/live", PUBLISH_KEY, "6",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    viewer = WhepViewer(server.base, "live", data_channel=False, audio=False)
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert json.loads(line) == {"published": True}, line
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 30, 20)
        out, err = await asyncio.wait_for(process.communicate(), 40)
    finally:
        await viewer.stop(http)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-3000:]
    end = json.loads(out.decode().strip().splitlines()[-1])
    assert end == {"state": "connected", "deleteStatus": 200}
    assert {(f.width, f.height) for f in viewer.record.frames} == {(320, 240)}
    # SMPTE bars: seven columns whose brightness falls from white to blue, left to right.
    luma = np.asarray(viewer.last_luma, dtype=float)
    bars = [luma[20:140, int((i + 0.5) * 320 / 7)].mean() for i in range(7)]
    assert all(a > b + 5 for a, b in itertools.pairwise(bars)), bars

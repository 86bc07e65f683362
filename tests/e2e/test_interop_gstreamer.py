"""Interop (issue 7): GStreamer's webrtcbin publishes over WHIP (VP8 colour bars, Opus).

GStreamer's DTLS certificate is RSA; aiortc alone offers only ECDSA cipher suites, and the
handshake then fails with "no shared cipher" (``ingest.peer`` adds the RSA suites).
"""

from __future__ import annotations

import itertools
import subprocess

import aiohttp
import numpy as np
import pytest

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import PUBLISH_KEY, Server
from tests.e2e.helpers import INTEROP, ExternalPeer

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
    peer = await ExternalPeer.start(
        SYSTEM_PYTHON, str(INTEROP / "gst_publisher.py"), f"{server.base}/whip/live", PUBLISH_KEY, "6"
    )
    viewer = WhepViewer(server.base, "live", data_channel=False, audio=False)
    try:
        assert await peer.next(30) == {"published": True}
        await viewer.start(http)
        await viewer.wait_for(lambda r: len(r.frames) >= 30, 20)
        end = await peer.result(40)
    finally:
        await viewer.stop(http)
        await peer.close()
    assert end == {"state": "connected", "deleteStatus": 200}
    assert {(f.width, f.height) for f in viewer.record.frames} == {(320, 240)}
    # SMPTE bars: seven columns whose brightness falls from white to blue, left to right.
    luma = np.asarray(viewer.last_luma, dtype=float)
    bars = [luma[20:140, int((i + 0.5) * 320 / 7)].mean() for i in range(7)]
    assert all(a > b + 5 for a, b in itertools.pairwise(bars)), bars

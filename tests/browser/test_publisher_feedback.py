"""A browser host's encoder starts at the server's start bitrate, not libwebrtc's 300 kbit/s.

Measured before the hint (Chromium 156, fake camera, H.264 on LiveCart's own receive path):
the candidate pair's ``availableOutgoingBitrate`` started at 300,000 and took 15 s to reach
900,000, the picture scaled down to 360p meanwhile. The page under test is the real publish page;
an init script only reorders the codecs (Safari and many phones offer H.264 first).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import KEY
from tests.e2e.conftest import Server

CODEC_FIRST = """
(() => {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (track, init) {
    const transceiver = add.call(this, track, init);
    if (track.kind === "video") {
      const codecs = RTCRtpSender.getCapabilities("video").codecs;
      const rank = (c) => (c.mimeType === "video/%s" ? 0 : 1);
      transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
    }
    window.__publisherPc = this;
    return transceiver;
  };
})();
"""

SENDING = """async () => {
  const out = { available: null, codec: null };
  const stats = await window.__publisherPc.getStats();
  stats.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate) {
      out.available = s.availableOutgoingBitrate;
    }
    if (s.type === "outbound-rtp" && s.kind === "video" && s.codecId) out.codec = stats.get(s.codecId).mimeType;
  });
  return out;
}"""


@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_a_browser_publisher_starts_at_the_servers_start_bitrate(
    browser: Any, web_server: Server, codec: str
) -> None:
    context = await browser.new_context()
    try:
        await context.add_init_script(CODEC_FIRST % codec)
        page = await context.new_page()
        await page.goto(f"{web_server.base}/publish/demo2")
        await page.fill("#key", KEY)
        await page.click("#start")
        await page.wait_for_function("document.getElementById('state').textContent === 'connected'", timeout=15000)
        sending = await page.wait_for_function(
            f"({SENDING})().then((s) => s.available !== null && s.codec !== null && s)", timeout=10000, polling=200
        )
        first = await sending.json_value()
        print(f"{codec}: first estimate {first}")
        assert first["codec"] == f"video/{codec}", first
        # The default publisher_start_kbps is 1500 (libwebrtc's own start: 300 kbit/s).
        assert first["available"] >= 1_000_000, first
        await page.click("#stop")
    finally:
        await context.close()

"""``livecart serve --demo`` with no configuration serves a stream a viewer can decode."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from benchmarks.peers import WhepViewer
from tests.e2e.conftest import start_server, stop_server


async def test_demo_stream_decodes_at_720p_and_prints_obs_settings(tmp_path: Path) -> None:
    server = start_server(["--demo"], tmp_path / "server.log", env={"LIVECART_CONFIG": ""})
    try:
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(server.base, "demo", read_pattern=False, rendition="720p")
            await viewer.start(http)
            try:
                await viewer.wait_for(lambda r: len(r.frames) >= 30 and r.audio_frames >= 10, timeout=20)
                assert {(f.width, f.height) for f in viewer.record.frames} == {(1280, 720)}
            finally:
                await viewer.stop(http)
            async with http.get(f"{server.base}/watch/demo") as res:
                assert res.status == 200 and "<video" in await res.text()
    finally:
        code = stop_server(server)
    assert code == 0
    assert server.proc.stdout is not None
    printed = server.proc.stdout.read()
    assert re.search(r"Bearer Token:\s+\S{16,}", printed), printed
    assert f"{server.base}/whip/demo" in printed
    assert "Traceback" not in server.log()

"""Production hardening (issue 7, in part): shutdown, per-address limits, fuzzed requests, kills."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import Server, start_server, stop_server, write_config

KEY = "hardening-key-0123456789"


def _config(tmp: Path, extra: str = "") -> Path:
    path = write_config(tmp / "livecart.toml", f'[streams.hard]\npublish_key = "{KEY}"\nmax_viewers = 40\n{extra}')
    return path


@pytest.fixture(scope="module")
def hard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hard")
    server = start_server(["--config", str(_config(tmp)), "--data-dir", str(tmp / "data")], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    assert "Traceback" not in server.log()


async def test_sigterm_tells_every_viewer_bye_and_exits_0_within_10_s(tmp_path: Path) -> None:
    server = start_server(
        ["--config", str(_config(tmp_path)), "--data-dir", str(tmp_path / "d")], tmp_path / "server.log"
    )
    async with aiohttp.ClientSession() as http:
        viewers = [WhepViewer(server.base, "hard", read_pattern=False) for _ in range(20)]
        await asyncio.gather(*(v.start(http) for v in viewers))
        await asyncio.gather(*(v.wait_for(lambda r: any('"snapshot"' in m for m in r.messages), 20) for v in viewers))
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 15)
        took = time.monotonic() - started
        await asyncio.gather(*(v.wait_for(lambda r: any('"bye"' in m for m in r.messages), 5) for v in viewers))
        await asyncio.gather(*(v.stop(None, delete=False) for v in viewers))
    assert code == 0 and took < 10, (code, took)
    assert "Traceback" not in server.log()


async def test_too_many_session_posts_from_one_address_get_429(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(
        config.read_text()
        .replace("posts_per_s_per_ip = 1000", "posts_per_s_per_ip = 2")
        .replace("posts_burst = 1000", "posts_burst = 3")
    )
    server = start_server(["--config", str(config), "--data-dir", str(tmp_path / "d")], tmp_path / "server.log")
    try:
        async with aiohttp.ClientSession() as http:
            statuses, retry = [], None
            for _ in range(8):
                async with http.post(
                    f"{server.base}/whep/hard", data="v=0", headers={"Content-Type": "application/sdp"}
                ) as res:
                    statuses.append(res.status)
                    if res.status == 429:
                        retry = res.headers.get("Retry-After")
        assert statuses[:3] == [400, 400, 400] and 429 in statuses, statuses
        assert retry is not None and int(retry) >= 1
    finally:
        assert stop_server(server) == 0


PATHS = [
    "/whip/hard",
    "/whep/hard",
    "/whip/hard/abc",
    "/whep/nope",
    "/api/streams/hard/cards",
    "/api/streams/hard/cards/x/show",
    "/api/streams/hard/events",
    "/api/streams",
    "/watch/hard",
    "/metrics",
]
sdp_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "v=0",
                "o=- 1 1 IN IP4 0.0.0.0",
                "s=-",
                "t=0 0",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "a=rtpmap:96 H264/90000",
                "a=fmtp:96 packetization-mode=1",
                "a=ice-ufrag:x",
                "a=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy",
                "a=setup:actpass",
                "a=mid:0",
                "a=rtcp-mux",
                "a=fingerprint:sha-256 AA:BB",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            ]
        ),
        st.text(max_size=40),
    ),
    max_size=30,
)
bodies = st.one_of(
    sdp_lines.map("\r\n".join),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=30), st.integers()), max_size=6).map(json.dumps),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["POST", "GET", "DELETE", "PATCH", "PUT"]),
    path=st.sampled_from(PATHS),
    query=st.sampled_from(["", "?rendition=", "?rendition=9999p", "?rendition=%00", "?token=x&x=%ff"]),
    content_type=st.sampled_from(["application/sdp", "application/json", "text/plain", "", 'application/sdp; x="']),
    auth=st.sampled_from([None, f"Bearer {KEY}", "Bearer", "Basic abc", "Bearer " + "x" * 300]),
    body=bodies,
)
def test_fuzzed_requests_never_get_a_500(
    hard_server: Server, method: str, path: str, query: str, content_type: str, auth: str | None, body: str
) -> None:
    if path.endswith("/events") and method == "GET":
        return  # an open SSE stream, not a request/response
    url = urlsplit(hard_server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Content-Type": content_type} if content_type else {}
    if auth:
        headers["Authorization"] = auth
    try:
        conn.request(method, path + query, body=body.encode("utf-8", "surrogatepass"), headers=headers)
        res = conn.getresponse()
        text = res.read().decode(errors="replace")
    finally:
        conn.close()
    assert res.status < 500, (method, path, res.status, text[:200])
    if res.status >= 400:
        assert text.strip() and "Traceback" not in text


async def test_a_killed_publisher_is_noticed_and_the_stream_can_be_published_again(hard_server: Server) -> None:
    script = textwrap.dedent(f"""
        import asyncio, aiohttp, sys
        from benchmarks.peers import WhipPublisher
        async def main():
            async with aiohttp.ClientSession() as http:
                pub = WhipPublisher({hard_server.base!r}, "hard", {KEY!r}, width=320, height=180, audio=False)
                await pub.start(http)
                print("published", flush=True)
                await asyncio.Event().wait()
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(hard_server.base, "hard", read_pattern=False)
        try:
            assert proc.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
            assert "published" in line
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 10, 15)
            killed = time.monotonic()
            proc.kill()  # SIGKILL: no DELETE, no DTLS close, nothing
            await viewer.wait_for(lambda r: r.got("stream", live=False), 10)
            noticed = time.monotonic() - killed
            assert noticed < 5 + 2  # media_timeout_s is 5 in the test config
            again = WhipPublisher(hard_server.base, "hard", KEY, width=320, height=180, audio=False)
            await again.start(http)  # 201 at once, no waiting for the dead session
            count = len(viewer.record.frames)
            await viewer.wait_for(lambda r: len(r.frames) >= count + 10, 15)
            await again.stop(http)
        finally:
            proc.kill()
            proc.wait(5)
            await viewer.stop(http)

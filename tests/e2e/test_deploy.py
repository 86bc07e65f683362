"""What a real deployment needs: HTTPS, ICE servers handed out in Link headers, 1:1 NAT address."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import start_server, stop_server, write_config
from tests.e2e.helpers import p256_certificate, viewer_offer

KEY = "deploy-test-key-0123456789"
PUBLIC_IP = "127.0.0.2"  # stands for the public side of a 1:1 NAT; never contacted by this test


async def test_https_link_headers_and_public_address(tmp_path: Path) -> None:
    cert, key = p256_certificate(tmp_path)
    config = write_config(tmp_path / "livecart.toml", f'[streams.live2]\npublish_key = "{KEY}"\n')
    config.write_text(
        '[server]\nice_servers = ["stun:stun.example.net:3478", "turn:turn.example.net:3478?transport=udp"]\n'
        'turn_username = "shop"\nturn_credential = "s3cret"\n' + config.read_text()
    )
    server = start_server(
        [
            "--config",
            str(config),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--public-ip",
            PUBLIC_IP,
            "--setup-timeout",
            "2",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        tmp_path / "server.log",
    )
    try:
        assert server.base.startswith("https://")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            async with http.options(f"{server.base}/whep/live2") as res:
                assert res.status == 204
                assert len(res.headers.getall("Link")) == 2
            async with http.post(
                f"{server.base}/whep/live2", data=await viewer_offer(), headers={"Content-Type": "application/sdp"}
            ) as res:
                answer = await res.text()
                assert res.status == 201, answer
                links = res.headers.getall("Link")
        assert links[0] == '<stun:stun.example.net:3478>; rel="ice-server"'
        assert links[1].startswith('<turn:turn.example.net:3478?transport=udp>; rel="ice-server"')
        assert 'username="shop"' in links[1] and 'credential="s3cret"' in links[1]
        hosts = [ln.split(" ")[4] for ln in answer.splitlines() if ln.startswith("a=candidate:") and " typ host" in ln]
        assert hosts and set(hosts) == {PUBLIC_IP}
        assert f"c=IN IP4 {PUBLIC_IP}" in answer
    finally:
        assert stop_server(server) == 0
    assert "Traceback" not in server.log()


async def test_protected_stream_needs_a_signed_unexpired_viewer_token(tmp_path: Path) -> None:
    secret = "viewer-secret-0123456789-abcdefghijk"
    stream = f'[streams.vip]\npublish_key = "{KEY}"\nviewer_secret = "{secret}"\n'
    config = write_config(tmp_path / "livecart.toml", stream)
    minted = subprocess.run(  # noqa: ASYNC221 - a short CLI call before anything runs
        [sys.executable, "-m", "relay.cli", "token", "--config", str(config), "--stream", "vip", "--ttl", "600"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = start_server(
        ["--config", str(config), "--setup-timeout", "2", "--data-dir", str(tmp_path / "d")], tmp_path / "server.log"
    )
    try:
        offer = await viewer_offer()
        async with aiohttp.ClientSession() as http:

            async def whep(query: str = "", token: str | None = None) -> int:
                headers = {"Content-Type": "application/sdp"}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                async with http.post(f"{server.base}/whep/vip{query}", data=offer, headers=headers) as res:
                    return res.status

            assert await whep() == 401
            assert await whep(token="v1.1.forged") == 403
            assert await whep(token="v1.1000.x") == 403
            assert await whep(token=minted) == 201
            assert await whep(query=f"?token={minted}") == 201
            async with http.get(f"{server.base}/api/streams/vip/events") as res:
                assert res.status == 401  # the card events of a protected stream too
    finally:
        assert stop_server(server) == 0


async def test_json_logs_carry_the_session_on_its_lines(tmp_path: Path) -> None:
    config = write_config(tmp_path / "livecart.toml", f'[streams.live2]\npublish_key = "{KEY}"\n')
    server = start_server(
        ["--config", str(config), "--log-format", "json", "--data-dir", str(tmp_path / "d")], tmp_path / "server.log"
    )
    try:
        async with aiohttp.ClientSession() as http:
            publisher = WhipPublisher(server.base, "live2", KEY, width=160, height=120, audio=False)
            await publisher.start(http)
            viewer = WhepViewer(server.base, "live2", read_pattern=False)
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 5, 15)
            await viewer.stop(http)
            await publisher.stop(http)
    finally:
        assert stop_server(server) == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "session", "message"} <= set(line) for line in lines)
    assert publisher.location is not None and viewer.location is not None
    for location in (publisher.location, viewer.location):
        full = location.rsplit("/", 1)[1]
        mine = [line for line in lines if line["session"] == full[:8]]
        assert any("ending" in line["message"] for line in mine), mine
        assert not any(full in json.dumps(line) for line in lines)  # the secret URL part is never logged

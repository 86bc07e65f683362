"""Webhooks to the shop's backend: refuse publishers and viewers, hear about unpublish, survive a
hook that is down."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from benchmarks.peers import WhepViewer, WhipPublisher
from tests.e2e.conftest import start_server, stop_server, write_config
from tests.local_http import serving

KEY = "webhook-test-key-0123456789"


class Hook:
    """A stand-in for the shop's backend on 127.0.0.1: refuses stream 'blocked', records all."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        event = await request.json()
        self.events.append(event)
        self.changed.set()
        return web.Response(status=403 if event.get("stream") == "blocked" else 200)


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Hook, str]]:
    recorder = Hook()
    app = web.Application()
    app.router.add_post("/{name}", recorder.handle)
    async with serving(app) as base:
        yield recorder, base


def _config(tmp: Path, hooks: str) -> Path:
    config = write_config(
        tmp / "livecart.toml", f'[streams.open]\npublish_key = "{KEY}"\n[streams.blocked]\npublish_key = "{KEY}"\n'
    )
    config.write_text(f"[server]\n{hooks}\n" + config.read_text())
    return config


async def test_hooks_may_refuse_and_are_told_of_unpublish(tmp_path: Path, hook: tuple[Hook, str]) -> None:
    recorder, url = hook
    config = _config(
        tmp_path, f'on_publish = "{url}/publish"\non_unpublish = "{url}/unpublish"\non_viewer = "{url}/viewer"\n'
    )
    server = start_server(["--config", str(config), "--data-dir", str(tmp_path / "d")], tmp_path / "server.log")
    try:
        async with aiohttp.ClientSession() as http:
            refused = WhipPublisher(server.base, "blocked", KEY, width=160, height=120, audio=False)
            with pytest.raises(RuntimeError, match="403"):
                await refused.start(http)
            await refused.stop(None, delete=False)
            publisher = WhipPublisher(server.base, "open", KEY, width=160, height=120, audio=False)
            await publisher.start(http)
            viewer = WhepViewer(server.base, "open", read_pattern=False)
            await viewer.start(http)
            await viewer.wait_for(lambda r: len(r.frames) >= 5, 15)
            await viewer.stop(http)
            await publisher.stop(http)

            async def told() -> None:
                while not any(e["event"] == "on_unpublish" for e in recorder.events):
                    recorder.changed.clear()
                    await recorder.changed.wait()

            await asyncio.wait_for(told(), 5)
        seen = [(e["event"], e["stream"]) for e in recorder.events]
        assert seen == [
            ("on_publish", "blocked"),
            ("on_publish", "open"),
            ("on_viewer", "open"),
            ("on_unpublish", "open"),
        ]
    finally:
        assert stop_server(server) == 0


async def test_a_hook_that_is_down_gives_503_and_a_clear_log(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/publish"
    config = _config(tmp_path, f'on_publish = "{dead}"\nwebhook_timeout_s = 1\n')
    server = start_server(["--config", str(config), "--data-dir", str(tmp_path / "d")], tmp_path / "server.log")
    try:
        async with aiohttp.ClientSession() as http:
            publisher = WhipPublisher(server.base, "open", KEY, width=160, height=120, audio=False)
            with pytest.raises(RuntimeError, match="503"):
                await publisher.start(http)
            await publisher.stop(None, delete=False)
    finally:
        assert stop_server(server) == 0
    log = server.log()
    assert "webhook on_publish for" in log and "is down" in log and "Traceback" not in log


async def test_a_client_that_leaves_mid_post_leaves_no_session(tmp_path: Path) -> None:
    """The shop's hook is slow (1 s); the publisher gives up after 0.3 s. No session may remain."""
    answered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(1.0)  # the slow backend under test, not synchronisation
        answered.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/publish", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/publish"
    server = start_server(
        ["--config", str(_config(tmp_path, f'on_publish = "{url}"\n')), "--setup-timeout", "15"],
        tmp_path / "server.log",
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as impatient:
            publisher = WhipPublisher(server.base, "open", KEY, width=160, height=120, audio=False)
            with pytest.raises(asyncio.TimeoutError):
                await publisher.start(impatient)
            await publisher.stop(None, delete=False)
        async with aiohttp.ClientSession() as http:

            async def settled() -> dict[str, int]:
                while True:
                    async with http.get(f"{server.base}/api/streams") as res:
                        sessions: dict[str, int] = (await res.json())["sessions"]
                    if sessions["negotiating"] == 0 and "client left before the answer" in server.log():
                        return sessions
                    await asyncio.sleep(0.1)  # polling the server's API for a state change

            await asyncio.wait_for(answered.wait(), 5)
            # Well before the 15 s setup deadline: the session was closed because its client left.
            sessions = await asyncio.wait_for(settled(), 5)
        assert sessions["publishers"] == 0 and sessions["peer_connections"] == 0, sessions
    finally:
        assert stop_server(server) == 0
        await runner.cleanup()
    assert "Traceback" not in server.log()

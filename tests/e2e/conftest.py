"""Fixtures that run a real ``livecart serve`` process on 127.0.0.1 and talk to it over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

PUBLISH_KEY = "test-publish-key-0123456789"
SECOND_KEY = "second-publish-key-0123456789"
LOCKED_KEY = "locked-publish-key-0123456789"


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(
        f"""
[limits]
posts_per_s_per_ip = 1000  # tests open many sessions from 127.0.0.1; test_hardening checks the limit
posts_burst = 1000
max_publishers = 3
max_viewers_per_stream = 12
setup_timeout_s = 10
media_timeout_s = 5

[streams.live]
publish_key = "{PUBLISH_KEY}"

[streams.second]
publish_key = "{SECOND_KEY}"

[streams.locked]
publish_key = "{LOCKED_KEY}"
takeover = false

[streams.tiny]
publish_key = "{SECOND_KEY}"
max_viewers = 1
{extra}
"""
    )
    return path


def start_server(
    args: list[str], log_path: Path, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> Server:
    """Start ``livecart serve`` on a free port and wait (bounded) for its 'listening' line.

    Each server gets its own data directory beside its log unless the test names one.
    """
    if "--data-dir" not in args:
        args = [*args, "--data-dir", str(log_path.parent / f"{log_path.stem}-data")]
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "relay.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    base = None
    lines: list[str] = []
    # readline blocks, but the server prints this line within seconds or exits (EOF).
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"listening on (https?://\S+)", line)
        if match:
            base = match.group(1)
            break
    if base is None:
        proc.kill()
        raise RuntimeError(f"server did not start: {''.join(lines)}\n{log_path.read_text()}")
    return Server(base, proc, log_path)


def stop_server(server: Server) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)
    return server.proc.returncode


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module and event-loop flavour (production runs uvloop)."""
    tmp = tmp_path_factory.mktemp("server")
    config = write_config(tmp / "livecart.toml")
    srv = start_server(["--config", str(config), "--loop", request.param], tmp / "server.log")
    yield srv
    code = stop_server(srv)
    log = srv.log()
    assert code == 0, f"server exited with {code}\n{log[-3000:]}"
    assert "Traceback" not in log, log[-5000:]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def api(http: aiohttp.ClientSession, server: Server) -> dict[str, object]:
    async with http.get(f"{server.base}/api/streams") as res:
        assert res.status == 200
        data: dict[str, object] = await res.json()
        return data


async def wait_until(check: object, timeout: float, interval: float = 0.1) -> None:
    """Poll an async predicate until true (bounded); for server state seen only through HTTP."""
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)

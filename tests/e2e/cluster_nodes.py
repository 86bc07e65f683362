"""Real cluster processes for the e2e tests: a Redis and one server per node, over loopback."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Server, start_server, stop_server, write_config
from tests.redis_server import RedisServer


@contextmanager
def cluster_nodes(
    tmp: Path, roles: dict[str, list[str]], *, token: str, config: str = "", may_be_killed: str | None = None
) -> Iterator[dict[str, Server]]:
    """Start Redis, then a node per ``roles`` entry (name -> its role arguments; the name is its
    node id), all with one config (``config`` then the cluster section). On the way out every
    node must have exited cleanly (``may_be_killed`` one SIGKILLed by the test) with no
    traceback or unretrieved task exception in its log."""
    try:
        redis = RedisServer(tmp)
    except FileNotFoundError:
        pytest.skip("needs Debian's redis-server (./dev.sh test installs it)")
    redis.start()
    path = write_config(tmp / "livecart.toml", f'{config}[cluster]\nurl = "{redis.url}"\ntoken = "{token}"\n')
    servers: dict[str, Server] = {}
    try:
        for name, role in roles.items():
            servers[name] = start_server(["--config", str(path), *role, "--node-id", name], tmp / f"{name}.log")
        yield servers
    finally:
        codes = {name: stop_server(s) for name, s in servers.items()}
        redis.stop()
    for name, server in servers.items():
        log = server.log()
        killed = name == may_be_killed and codes[name] == -signal.SIGKILL
        assert codes[name] == 0 or killed, f"{name} exited with {codes[name]}\n{log[-3000:]}"
        assert "Traceback" not in log and "never retrieved" not in log, log[-5000:]


async def get_json(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> Any:
    async with http.get(url, **kwargs) as res:
        assert res.status == 200, await res.text()
        return await res.json()

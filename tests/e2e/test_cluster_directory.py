"""The cluster directory on a real Redis: TTLs, stream origins, and a Redis that goes away."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from relay.cluster.directory import DirectoryUnavailable, LocalDirectory
from relay.cluster.nodes import NodeLoad
from relay.cluster.redis_directory import RedisDirectory
from tests.e2e.conftest import wait_until
from tests.redis_server import RedisServer


def load(node_id: str, role: str = "edge", viewers: int = 0) -> NodeLoad:
    return NodeLoad(node_id, role, f"http://{node_id}", time.time(), viewers=viewers)  # type: ignore[arg-type]


async def test_nodes_and_origins_are_listed_while_refreshed_and_expire_by_themselves(redis_server: RedisServer) -> None:
    directory = RedisDirectory(redis_server.url, prefix=f"t{secrets.token_hex(4)}")
    try:
        await directory.heartbeat(load("origin-1", "origin"), ("shop",), ttl_s=0.5)
        await directory.heartbeat(load("edge-1", viewers=3), (), ttl_s=30)
        assert await directory.origin_of("shop") == "origin-1"
        assert await directory.origin_of("other") is None
        nodes = {n.node_id: n for n in await directory.nodes()}
        assert set(nodes) == {"origin-1", "edge-1"} and nodes["edge-1"].viewers == 3

        async def origin_gone() -> bool:
            return await directory.origin_of("shop") is None

        await wait_until(origin_gone, 5)  # not refreshed: the origin's entries expire by themselves
        assert [n.node_id for n in await directory.nodes()] == ["edge-1"]
        await directory.leave("edge-1", ())
        assert await directory.nodes() == []
    finally:
        await directory.close()


async def test_an_entry_that_is_not_a_node_is_skipped(redis_server: RedisServer) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    directory = RedisDirectory(redis_server.url, prefix=prefix)
    try:
        await directory.heartbeat(load("edge-1"), (), ttl_s=30)
        await directory._redis.zadd(f"{prefix}:nodes", {"junk": 1})
        await directory._redis.set(f"{prefix}:node:junk", b"not json")
        assert [n.node_id for n in await directory.nodes()] == ["edge-1"]
    finally:
        await directory.close()


async def test_a_stopped_redis_is_a_quick_typed_error_and_a_restarted_one_works_again(tmp_path: Path) -> None:
    try:
        redis = RedisServer(tmp_path)
    except FileNotFoundError:
        pytest.skip("needs Debian's redis-server (./dev.sh test installs it)")
    redis.start()
    directory = RedisDirectory(redis.url)
    try:
        await directory.heartbeat(load("edge-1"), (), ttl_s=30)
        redis.stop()
        loop = asyncio.get_running_loop()
        for call in (directory.nodes(), directory.origin_of("shop"), directory.heartbeat(load("edge-1"), (), 5)):
            started = loop.time()
            with pytest.raises(DirectoryUnavailable) as refused:
                await call
            assert loop.time() - started < 3  # a join is refused promptly, it never hangs on Redis
            assert refused.value.status == 503 and "\n" not in refused.value.reason
        redis.start()

        async def back() -> bool:
            try:
                await directory.heartbeat(load("edge-1"), (), ttl_s=30)
            except DirectoryUnavailable:
                return False
            return True

        await wait_until(back, 10)
        assert [n.node_id for n in await directory.nodes()] == ["edge-1"]  # registered again, from scratch
    finally:
        await directory.close()
        redis.stop()


async def test_the_in_process_directory_has_the_same_expiry() -> None:
    now = [1000.0]
    directory = LocalDirectory(clock=lambda: now[0])
    await directory.heartbeat(load("o", "origin"), ("shop",), ttl_s=5)
    assert await directory.origin_of("shop") == "o" and len(await directory.nodes()) == 1
    now[0] += 5.1
    assert await directory.origin_of("shop") is None and await directory.nodes() == []

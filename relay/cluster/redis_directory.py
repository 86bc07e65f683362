"""The cluster directory on Redis (``redis.asyncio``): node entries and stream origins with TTLs.

Keys (all under one prefix, so one Redis can serve several clusters):

- ``{prefix}:node:{id}``: the node's last ``NodeLoad`` as JSON, ``SET ... PX ttl`` on every
  heartbeat; a node that stops beating disappears by itself.
- ``{prefix}:nodes``: a sorted set of node ids scored by their last heartbeat (ms), so that a
  reader lists nodes with one ``ZRANGEBYSCORE`` and one ``MGET`` rather than a ``SCAN``.
- ``{prefix}:origin:{stream}``: the origin's node id, ``SET ... PX ttl`` on every heartbeat of
  the origin while it ingests the stream (refreshed, never written once: an origin that dies
  stops being anyone's origin within the TTL).

Every call has a short socket timeout and no retries of its own: the caller's next heartbeat is
the retry, and a join that needs the directory gets a 503 rather than waiting on a dead Redis.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.cluster.directory import DirectoryUnavailable
from relay.cluster.nodes import BadNodeRecord, NodeLoad

log = logging.getLogger(__name__)

TIMEOUT_S = 1.0  # per Redis call: a routing decision must not wait longer on a dead Redis
PREFIX = "livecart"


def _unreachable(exc: BaseException) -> str:
    return f"cluster directory unreachable: {type(exc).__name__}: {str(exc).strip().rstrip('.')}"


class RedisDirectory:
    """Owns one connection pool to the cluster's Redis."""

    def __init__(self, url: str, *, prefix: str = PREFIX, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        self._prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            retry=None,
            health_check_interval=0,
        )

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def heartbeat(self, load: NodeLoad, origin_of: tuple[str, ...], ttl_s: float) -> None:
        ttl_ms = max(1, round(ttl_s * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key("node", load.node_id), load.to_json(), px=ttl_ms)
                pipe.zadd(self._key("nodes"), {load.node_id: round(load.at * 1000)})
                # Forget ids whose entries can only have expired (keeps the set small).
                pipe.zremrangebyscore(self._key("nodes"), 0, round((time.time() - 10 * ttl_s) * 1000))
                for stream in origin_of:
                    pipe.set(self._key("origin", stream), load.node_id, px=ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DirectoryUnavailable(_unreachable(exc)) from None

    async def nodes(self) -> list[NodeLoad]:
        try:
            ids = await self._redis.zrange(self._key("nodes"), 0, -1)
            if not ids:
                return []
            values = await self._redis.mget([self._key("node", _text(i)) for i in ids])
        except (RedisError, OSError) as exc:
            raise DirectoryUnavailable(_unreachable(exc)) from None
        nodes = []
        for value in values:
            if value is None:
                continue
            try:
                nodes.append(NodeLoad.from_json(value))
            except BadNodeRecord as exc:
                log.debug("cluster directory: skipping an entry: %s", exc)
        return nodes

    async def origin_of(self, stream: str) -> str | None:
        try:
            value = await self._redis.get(self._key("origin", stream))
        except (RedisError, OSError) as exc:
            raise DirectoryUnavailable(_unreachable(exc)) from None
        return None if value is None else _text(value)

    async def leave(self, node_id: str, origin_of: tuple[str, ...]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._key("node", node_id))
                pipe.zrem(self._key("nodes"), node_id)
                for stream in origin_of:
                    pipe.delete(self._key("origin", stream))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DirectoryUnavailable(_unreachable(exc)) from None

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: object) -> str:
    """A reply item as text (redis-py types replies loosely: bytes unless decoding is on)."""
    return value.decode() if isinstance(value, bytes) else str(value)

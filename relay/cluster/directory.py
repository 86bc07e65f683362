"""The cluster directory: which nodes are up with what load, and which node is each stream's origin.

Only routing lives here, never media or session state: a node whose directory is unreachable
keeps every running session and its media (its heartbeat fails quietly and is retried), and only
a new join that needs routing may be refused (503). ``LocalDirectory`` is the all-in-one
server's (one node, nothing shared); ``relay.cluster.redis_directory.RedisDirectory`` the
cluster's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from ingest.errors import LiveCartError
from relay.cluster.nodes import NodeLoad


class DirectoryUnavailable(LiveCartError):
    """The cluster directory (Redis) cannot be reached; routing must wait, media does not."""

    status = 503

    def __init__(self, reason: str, retry_after_s: int = 2) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class Directory(Protocol):
    """What a node needs of the shared directory. Every call raises ``DirectoryUnavailable``
    (never anything else) when the store cannot answer within its short timeout."""

    async def heartbeat(self, load: NodeLoad, origin_of: tuple[str, ...], ttl_s: float) -> None:
        """Write this node's load, and refresh "``stream`` -> this node" for every stream it is
        the origin of; both expire after ``ttl_s`` unless refreshed."""
        ...

    async def nodes(self) -> list[NodeLoad]:
        """Every node with an unexpired entry (callers still judge liveness by ``at``)."""
        ...

    async def origin_of(self, stream: str) -> str | None:
        """The node id of ``stream``'s origin, or None when no origin holds it."""
        ...

    async def leave(self, node_id: str, origin_of: tuple[str, ...]) -> None:
        """This node stops (a clean shutdown): drop its entries at once."""
        ...

    async def close(self) -> None: ...


class LocalDirectory:
    """The directory of a single process: what it was told, kept in memory until it expires."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._time = clock
        self._nodes: dict[str, tuple[NodeLoad, float]] = {}
        self._origins: dict[str, tuple[str, float]] = {}

    async def heartbeat(self, load: NodeLoad, origin_of: tuple[str, ...], ttl_s: float) -> None:
        expires = self._time() + ttl_s
        self._nodes[load.node_id] = (load, expires)
        for stream in origin_of:
            self._origins[stream] = (load.node_id, expires)

    async def nodes(self) -> list[NodeLoad]:
        now = self._time()
        return [load for load, expires in self._nodes.values() if expires > now]

    async def origin_of(self, stream: str) -> str | None:
        entry = self._origins.get(stream)
        return entry[0] if entry is not None and entry[1] > self._time() else None

    async def leave(self, node_id: str, origin_of: tuple[str, ...]) -> None:
        self._nodes.pop(node_id, None)
        for stream in origin_of:
            if self._origins.get(stream, ("", 0.0))[0] == node_id:
                del self._origins[stream]

    async def close(self) -> None:
        return None

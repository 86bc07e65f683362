"""An edge serves its streams' LL-HLS by relaying the origin's, as a CDN would.

An edge has no encoder output of its own to package (it forwards the origin's RTP), and if each
edge packaged what it forwards, parts would get different names and timings on every edge: a
CDN or load balancer spreading one player over two edges would break. So the origin packages
once and an edge relays: each distinct request goes to the origin once however many players ask
at the same moment (blocking playlist requests at the live edge all ask for the same next part),
and what the origin allows to be cached (``Cache-Control``: immutable parts and segments, short
playlists, blocking answers) is kept in a bounded cache. Private answers (a protected stream's,
named per viewer) are relayed, never kept.

What is kept and for how long is decided in relay.cluster.response_cache (pure); ``HlsRelay``
moves the bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from ingest.errors import LiveCartError
from relay.cluster.response_cache import Fetched, ResponseCache, cache_ttl

log = logging.getLogger("livecart.cluster")

UPSTREAM_TIMEOUT_S = 15.0  # a blocking playlist request is held up to ~3 part durations


class OriginUnavailable(LiveCartError):
    """The origin did not answer a relayed request."""

    status = 502


class HlsRelay:
    """The edge's relay of ``/hls/...`` to each stream's origin (one request per distinct URL in
    flight, answers cached as the origin allows)."""

    def __init__(self, http: aiohttp.ClientSession, clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http
        self._clock = clock
        self.cache = ResponseCache()
        self._inflight: dict[str, asyncio.Task[Fetched]] = {}
        self.upstream_requests = 0
        self.upstream_failures = 0

    async def get(self, origin: Callable[[], Awaitable[str]], path: str) -> Fetched:
        """The origin's answer to ``GET path`` (path and query), from the cache, a request
        already in flight, or a new one; OriginUnavailable when it cannot be had."""
        cached = self.cache.get(path, self._clock())
        if cached is not None:
            return cached
        task = self._inflight.get(path)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(origin, path), name=f"hls relay {path[:60]}")
            self._inflight[path] = task
            task.add_done_callback(lambda done: self._settled(path, done))
        # Shielded: a player that goes away does not cancel the request the others wait for.
        return await asyncio.shield(task)

    def _settled(self, path: str, task: asyncio.Task[Fetched]) -> None:
        if self._inflight.get(path) is task:
            del self._inflight[path]
        if not task.cancelled() and task.exception() is not None:  # retrieved here, raised to each waiter
            self.upstream_failures += 1

    async def _fetch(self, origin: Callable[[], Awaitable[str]], path: str) -> Fetched:
        base = await origin()
        self.upstream_requests += 1
        try:
            timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S)
            async with self._http.get(f"{base}{path}", timeout=timeout, allow_redirects=False) as res:
                body = await res.read()
                fetched = Fetched(
                    res.status,
                    body,
                    res.headers.get("Content-Type", "application/octet-stream"),
                    res.headers.get("Cache-Control", "no-store"),
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.info("cluster: HLS relay of %s from %s failed: %s", path.split("?", 1)[0], base, reason)
            raise OriginUnavailable(f"the stream's origin did not answer ({reason})") from None
        self.cache.put(path, fetched, cache_ttl(fetched.status, fetched.cache_control), self._clock())
        return fetched

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def counters(self) -> dict[str, int]:
        return {
            "upstream_requests": self.upstream_requests,
            "upstream_failures": self.upstream_failures,
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_bytes": self.cache.bytes,
            "cache_entries": len(self.cache),
        }

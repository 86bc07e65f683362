"""Webhooks to the shop's backend: ``on_publish`` and ``on_viewer`` may refuse, ``on_unpublish``
is told. Each call has a deadline; a hook that is down is logged clearly and, unless
``webhook_fail_open`` is set, the publisher or viewer is refused with 503 until it is back.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from relay.config import ServerConfig
from relay.errors import Forbidden, LimitReached

log = logging.getLogger(__name__)


class Webhooks:
    """Owns the HTTP client session for hooks and the tasks of notifications in flight."""

    def __init__(self, server: ServerConfig) -> None:
        self._config = server
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[int | None]] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._config.webhook_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def _call(self, url: str, payload: dict[str, object]) -> int | None:
        """POST ``payload``; the status, or None when the hook could not be reached in time."""
        try:
            async with self._client().post(url, json=payload) as res:
                await res.read()
                return res.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.error("webhook %s for %s is down (%s): %s", payload["event"], url, type(exc).__name__, exc)
            return None

    async def _ask(self, url: str | None, payload: dict[str, object]) -> None:
        if url is None:
            return
        status = await self._call(url, payload)
        if status is None:
            if self._config.webhook_fail_open:
                return
            raise LimitReached(f"the shop's {payload['event']} check is unreachable; retry later", 10)
        if not 200 <= status < 300:
            log.info("webhook %s refused %s (%d)", payload["event"], payload["stream"], status)
            raise Forbidden(f"refused by the shop's {payload['event']} check ({status})")

    async def allow_publish(self, stream: str, remote: str | None) -> None:
        await self._ask(self._config.on_publish, {"event": "on_publish", "stream": stream, "remote": remote})

    async def allow_viewer(self, stream: str, remote: str | None) -> None:
        await self._ask(self._config.on_viewer, {"event": "on_viewer", "stream": stream, "remote": remote})

    def unpublished(self, stream: str, reason: str) -> None:
        url = self._config.on_unpublish
        if url is None:
            return
        task = asyncio.ensure_future(self._call(url, {"event": "on_unpublish", "stream": stream, "reason": reason}))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let notifications in flight finish (each has its deadline), then close the client."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

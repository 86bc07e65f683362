"""A deadline for a connection's request headers, which aiohttp does not have by itself.

A slow client (by malice or by a broken network) that opens a connection and trickles its
request line and headers would hold a socket and a parser forever. ``DeadlineRunner`` wraps each
connection's protocol: if the first request's headers are not complete ``header_timeout_s``
after the connection opened, the connection is closed and a line is logged. "Complete" is
signalled by ``mark_started``, a middleware that runs once aiohttp has parsed the headers.
Bodies have their own deadline (``ingest.http_input.read_limited``); idle keep-alive
connections are closed by aiohttp's ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HeaderDeadlines:
    """The connections whose first request has started (their headers arrived in time)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._started: set[int] = set()
        self.closed = 0  # connections closed for want of headers

    @web.middleware
    async def mark_started(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._started.add(id(request.protocol))
        return await handler(request)

    def arm(self, protocol: Any, transport: asyncio.BaseTransport) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(self.timeout_s, self._expire, protocol, transport)

    def _expire(self, protocol: Any, transport: asyncio.BaseTransport) -> None:
        if id(protocol) in self._started:
            self._started.discard(id(protocol))
            return
        if not transport.is_closing():
            peer = transport.get_extra_info("peername")
            log.info("closing connection from %s: no complete request headers within %g s", peer, self.timeout_s)
            self.closed += 1
            transport.close()

    def forget(self, protocol: Any) -> None:
        self._started.discard(id(protocol))


class _DeadlineProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol; closes the connection at the header deadline."""

    def __init__(self, inner: Any, deadlines: HeaderDeadlines) -> None:
        self._inner = inner
        self._deadlines = deadlines
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        self._timer = self._deadlines.arm(self._inner, transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._deadlines.forget(self._inner)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class DeadlineRunner(web.AppRunner):
    """An ``AppRunner`` whose sites wrap each connection in a header deadline."""

    def __init__(self, app: web.Application, deadlines: HeaderDeadlines, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._deadlines = deadlines

    @property
    def server(self) -> Any:
        inner = super().server
        if inner is None:
            return None
        deadlines = self._deadlines

        def factory() -> asyncio.Protocol:
            return _DeadlineProtocol(inner(), deadlines)

        return factory

"""What every WebRTC session (a WHIP publisher, a WHEP viewer) has: an owned peer connection,
owned tasks, connection-state events, and a close that runs once and releases everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from ingest.logctx import context_for
from ingest.peer import add_remote_candidates, close_quietly, failure_reason, watch_state
from ingest.trickle import IceRestartUnsupported, ice_credentials, read_patch

log = logging.getLogger(__name__)


class PeerSession:
    """Owns ``pc`` and every task started with ``_spawn``; ``close`` cancels and awaits them,
    closes the peer connection, then calls ``_ended(reason)`` exactly once.

    Subclasses set ``kind`` ("publisher", "viewer") and implement ``_ended``.
    """

    kind = "session"

    def __init__(self, session_id: str, stream: str, pc: RTCPeerConnection) -> None:
        self.id = session_id
        self.stream = stream
        self.pc = pc
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._failed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        # The session resource's entity-tag (RFC 9725 ETag/If-Match); it would change on an ICE
        # restart, which aiortc cannot do, so it never changes.
        self.etag = secrets.token_urlsafe(12)
        watch_state(pc, self._on_state)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.stream}/{self.id[:8]}"

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Start a task owned by this session, logging under its id."""
        task = asyncio.get_running_loop().create_task(coro, context=context_for(self.id))
        task.set_name(f"{self.label} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def patch(self, body: str, if_match: str | None) -> int:
        """An RFC 9725 PATCH: trickled candidates go to aiortc (returns how many were usable);
        an ICE restart is refused with 422, since aiortc cannot apply one."""
        remote = self.pc.remoteDescription
        ufrag, pwd = ice_credentials(remote.sdp if remote is not None else "")
        request = read_patch(body, if_match, etag=self.etag, ufrag=ufrag, pwd=pwd)
        if request.restart:
            raise IceRestartUnsupported(
                "ICE restart is not supported by this server (aiortc cannot change a running "
                "session's ICE credentials): POST a new offer instead"
            )
        if self._closing is not None:
            return 0
        return await add_remote_candidates(self.pc, request.fragment, self.label)

    @property
    def connected(self) -> bool:
        """Whether the peer connection has come up (it may have failed since)."""
        return self._connected.is_set()

    def _on_state(self, state: str) -> None:
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._failed.set()

    def failure(self) -> str:
        """Why the connection went down, in one line (ICE, DTLS and what about it, or closed)."""
        return failure_reason(self.pc, was_connected=self.connected)

    async def _await_connected(self, timeout_s: float) -> bool:
        """True once connected; False (and closing) when it fails first or is not connected within
        ``timeout_s``. A failed ICE or DTLS handshake ends the session at once, naming the cause,
        rather than leaving it to the deadline."""
        connected = asyncio.ensure_future(self._connected.wait())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait((connected, failed), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (connected, failed):
                waiter.cancel()
            await asyncio.gather(connected, failed, return_exceptions=True)
        if self._connected.is_set() and not self._failed.is_set():
            return True
        self.close_soon(self.failure() if self._failed.is_set() else f"not connected within {timeout_s:g} s")
        return False

    def close_soon(self, reason: str) -> None:
        """Start closing (from a callback or one of the session's own tasks)."""
        if self._closing is None:
            loop = asyncio.get_running_loop()
            self._closing = loop.create_task(self._close(reason), context=context_for(self.id))

    async def close(self, reason: str) -> None:
        """Close the session and wait until everything it owned is released."""
        self.close_soon(reason)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        log.info("%s: ending (%s)", self.label, reason)
        self._stopping()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_quietly(self.pc, self.label)
        await self._ended(reason)

    def _stopping(self) -> None:
        """Called first thing when the close begins (before any await)."""

    async def _ended(self, reason: str) -> None:
        raise NotImplementedError


async def send_last(channel: RTCDataChannel | None, message: str, timeout_s: float = 1.0) -> None:
    """Send a last message on ``channel`` (if open) and give it up to ``timeout_s`` to leave
    before the peer connection closes under it."""
    if channel is None or channel.readyState != "open":
        return
    flushed = asyncio.Event()
    channel.on("bufferedamountlow", flushed.set)
    channel.send(message)
    if channel.bufferedAmount > channel.bufferedAmountLowThreshold:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flushed.wait(), timeout_s)

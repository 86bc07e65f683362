"""The errors a peer's offer can cause in ingest, and the base of every client-caused error.

``LiveCartError`` carries an HTTP status and a one-line reason; the HTTP edge
(``relay.http.middleware``) maps every subclass to a response in one place. Each package raises
its own subclasses (``relay.errors``, ``relay.cards.card``, ``relay.http.input``...).
"""

from __future__ import annotations

import errno


class LiveCartError(Exception):
    """Base of every error a client can cause. ``reason`` is one line, shown to the client."""

    status: int = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason.replace("\n", " ").strip()

    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. ``Retry-After``)."""
        return {}


class BadOffer(LiveCartError):
    """The SDP offer is malformed or cannot be used (no video, no codec in common)."""

    status = 400


class ResourceExhausted(LiveCartError):
    """The server ran out of something (descriptors, ports, buffers, memory) while setting up a
    session: the server's condition, not the peer's, so 503 and a retry later."""

    status = 503

    def __init__(self, reason: str, retry_after_s: int = 5) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


# errno -> the limit an operator can raise; anything else is not exhaustion.
_EXHAUSTED = {
    errno.EMFILE: "the open-files limit (RLIMIT_NOFILE)",
    errno.ENFILE: "the system-wide open-files limit (fs.file-max)",
    errno.ENOBUFS: "socket buffer space (net.core.wmem_max/rmem_max, net.ipv4.udp_mem)",
    errno.ENOMEM: "memory",
    errno.EADDRNOTAVAIL: "local UDP ports (net.ipv4.ip_local_port_range)",
    errno.EADDRINUSE: "local UDP ports (net.ipv4.ip_local_port_range)",
}


def exhausted(exc: BaseException | None) -> ResourceExhausted | None:
    """``exc`` (or what caused it) as a ResourceExhausted naming the limit, or None."""
    seen = 0
    while exc is not None and seen < 8:  # aiortc and asyncio sometimes wrap the OSError
        if isinstance(exc, MemoryError):
            return ResourceExhausted("the server is out of memory, retry later")
        if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
            return ResourceExhausted("the thread limit (memory, or the unit's TasksMax=) is reached, retry later")
        if isinstance(exc, OSError) and exc.errno in _EXHAUSTED:
            return ResourceExhausted(f"{_EXHAUSTED[exc.errno]} is reached: {exc.strerror}, retry later")
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None

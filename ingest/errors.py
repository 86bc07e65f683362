"""The errors a peer's offer can cause in ingest, and the base of every client-caused error.

``LiveCartError`` carries an HTTP status and a one-line reason; the HTTP edge
(``relay.http.middleware``) maps every subclass to a response in one place. Each package raises
its own subclasses (``relay.errors``, ``relay.cards.card``, ``relay.http.input``...).
"""

from __future__ import annotations


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

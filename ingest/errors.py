"""Typed domain errors, each carrying the HTTP status and a one-line reason.

The HTTP layer (``relay.http_errors``) maps them to responses in one place; everything
else raises them and never builds a response itself.
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


class BadRequest(LiveCartError):
    """The request is malformed in a way other than its SDP."""

    status = 400


class Unauthorized(LiveCartError):
    """No bearer token was sent where one is required."""

    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="livecart"'}


class Forbidden(LiveCartError):
    """A token was sent but it is not the right one."""

    status = 403


class StreamNotFound(LiveCartError):
    """The stream name is not configured on this server."""

    status = 404


class SessionNotFound(LiveCartError):
    """The WHIP/WHEP session resource does not exist (or has already ended)."""

    status = 404


class StreamBusy(LiveCartError):
    """The stream already has a live publisher and takes no takeover."""

    status = 409


class BodyTooLarge(LiveCartError):
    """The request body is over the configured limit."""

    status = 413


class RequestTimeout(LiveCartError):
    """The client did not send its request body in time."""

    status = 408


class UnsupportedMediaType(LiveCartError):
    """The request body has the wrong content type."""

    status = 415


class TooManyRequests(LiveCartError):
    """A rate limit (per client address, per stream) is exceeded; retry after ``retry_after_s``."""

    status = 429

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.49)))}


class LimitReached(LiveCartError):
    """A configured capacity limit is reached; the client may retry later."""

    status = 503

    def __init__(self, reason: str, retry_after_s: int = 5) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

"""The errors relay raises in more than one of its sub-packages: auth, unknown names, limits.

Each carries its HTTP status and a one-line reason (see ``ingest.errors.LiveCartError``);
``relay.http.middleware`` turns them into responses.
"""

from __future__ import annotations

from ingest.errors import LiveCartError


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


class MediaNotFound(LiveCartError):
    """An HLS playlist, part or segment that does not exist (any more, or yet, on this server)."""

    status = 404

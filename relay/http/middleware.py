"""What every request goes through: errors become a status and a one-line reason (in this one
place), responses are counted by status, and CORS headers let pages of other origins use us."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ingest.errors import LiveCartError
from relay.observe.metrics import Metrics

log = logging.getLogger("livecart.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS = web.AppKey("metrics", Metrics)


def _text(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=reason + "\n", content_type="text/plain", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and aiohttp's own HTTP errors to a plain-text one-line reason."""
    try:
        return await handler(request)
    except LiveCartError as exc:
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.reason)
        return _text(exc.status, exc.reason, exc.headers())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.text if exc.text and "\n" not in exc.text.strip() else exc.reason
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return _text(exc.status, reason.strip() or exc.reason, headers)
    except (ConnectionResetError, TimeoutError) as exc:
        log.info("%s %s: client went away (%s)", request.method, request.path, type(exc).__name__)
        raise
    except Exception as exc:  # a bug: log it once with its traceback, answer without one
        log.exception("%s %s -> 500 internal error: %s", request.method, request.path, exc)
        return _text(500, "internal server error; see the server log")


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Retry-After, Accept-Post",
}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Browser publishers and players may live on another origin."""
    response = await handler(request)
    response.headers.update(CORS_HEADERS)
    return response


@web.middleware
async def status_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every response by status for /metrics."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if METRICS in request.app:
            request.app[METRICS].responses.labels(str(exc.status)).inc()
        raise
    if METRICS in request.app:
        request.app[METRICS].responses.labels(str(response.status)).inc()
    return response

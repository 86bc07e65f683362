"""The one place where errors become HTTP responses: a status and a one-line reason."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ingest.errors import LiveCartError

log = logging.getLogger("livecart.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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

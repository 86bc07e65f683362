"""Reading what a WHIP/WHEP client sends: the bearer token and a bounded SDP body."""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web

from ingest.errors import LiveCartError
from relay.errors import BadRequest, Forbidden, Unauthorized


class BodyTooLarge(LiveCartError):
    """The request body is over the configured limit."""

    status = 413


class RequestTimeout(LiveCartError):
    """The client did not send its request body in time."""

    status = 408


class UnsupportedMediaType(LiveCartError):
    """The request body has the wrong content type."""

    status = 415



def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def viewer_token(request: web.Request) -> str | None:
    """A viewer's token: the bearer token, or ``?token=`` for players that cannot set headers."""
    return bearer_token(request) or request.query.get("token") or None


def check_bearer(request: web.Request, expected: str) -> None:
    """Raise Unauthorized/Forbidden unless the request carries ``expected`` (constant time)."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <publish key>'")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("wrong bearer token for this stream")


DEFAULT_BODY_TIMEOUT_S = 10.0


async def read_limited(request: web.Request, max_bytes: int, timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> bytes:
    """Read the whole body, at most ``max_bytes`` of it, within ``timeout_s``.

    BodyTooLarge past the limit (declared or actual); RequestTimeout when the client is too slow.
    The body may arrive in any number of pieces: it is read until its end, never just the first.
    """
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(max_bytes + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise BodyTooLarge(f"body is over the {max_bytes}-byte limit")
    except TimeoutError:
        raise RequestTimeout(f"request body not received within {timeout_s:g} s") from None
    return b"".join(chunks)


async def read_body(
    request: web.Request, *, content_type: str, max_bytes: int, timeout_s: float = DEFAULT_BODY_TIMEOUT_S
) -> str:
    """Read a text body of ``content_type`` of at most ``max_bytes``, without trusting headers."""
    if request.content_type != content_type:
        got = request.content_type or "none"
        raise UnsupportedMediaType(f"Content-Type must be {content_type}, got {got}")
    data = await read_limited(request, max_bytes, timeout_s)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 text (byte {exc.start})") from None

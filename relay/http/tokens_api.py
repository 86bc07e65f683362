"""``POST /api/streams/{stream}/tokens``: the host (publish or host key) mints a viewer JWT for
one buyer, for shops whose backend would rather ask than sign. It is the same token as
``livecart token`` and any stock JWT library makes (``relay.identity.mint``).
"""

from __future__ import annotations

import time

from aiohttp import web

from relay.errors import BadRequest, StreamBusy
from relay.http.cards_api import check_host
from relay.http.talk_api import json_body
from relay.identity import MAX_NAME, ROLES, mint
from relay.sessions.stream import Stream

MAX_SUB = 128
TTL_S = (60, 7 * 86400)  # a token lives at least a minute and at most a week


def _text(body: dict[str, object], key: str, limit: int, default: str | None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequest(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


async def post_token(request: web.Request, stream: Stream) -> web.Response:
    """``{"sub", "name"?, "role"?, "ttl_s"?}`` -> ``201 {"token", "expires_at", "stream"}``."""
    check_host(request, stream)
    secret = stream.config.viewer_secret
    if secret is None:
        raise StreamBusy(f"stream {stream.name!r} is open (no viewer_secret): its viewers need no token")
    body = await json_body(request)
    sub = _text(body, "sub", MAX_SUB, None)
    name = _text(body, "name", MAX_NAME, sub)
    asked = body.get("role", "viewer")
    role = next((r for r in ROLES if r == asked), None)
    if role is None:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    ttl = body.get("ttl_s", 3600)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not TTL_S[0] <= ttl <= TTL_S[1]:
        raise BadRequest(f"ttl_s must be a whole number of seconds from {TTL_S[0]} to {TTL_S[1]}")
    expires_at = int(time.time()) + ttl
    token = mint(secret, stream.name, expires_at, sub=sub, name=name, role=role)
    return web.json_response({"token": token, "expires_at": expires_at, "stream": stream.name}, status=201)

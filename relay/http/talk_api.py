"""HTTP handlers for the conversation: posting for players without a data channel, and the host
console's feed and moderation. Thin: read and check the request, call the stream's ``TalkFeed``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import TypeGuard

from aiohttp import web

from relay.errors import BadRequest
from relay.http.cards_api import check_host
from relay.http.input import bearer_token, read_limited, viewer_token
from relay.http.middleware import Handler
from relay.identity import Identity
from relay.sessions.stream import Stream
from relay.talk.feed import comment_json

MAX_BODY = 2048
SSE_KEEPALIVE_S = 15.0


async def json_body(request: web.Request) -> dict[str, object]:
    raw = await read_limited(request, MAX_BODY)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("body is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _poster(request: web.Request, stream: Stream) -> Identity:
    """The host (publish or host key) posts as the host; anyone else as its viewer token says."""
    token = bearer_token(request)
    keys = [stream.config.publish_key, *([stream.config.host_key] if stream.config.host_key else [])]
    if token is not None and any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
        return Identity(sub="host", name="Host", role="host")
    return stream.check_viewer_token(viewer_token(request), time.time())


async def post_comment(request: web.Request, stream: Stream) -> web.Response:
    who = _poster(request, stream)
    body = await json_body(request)
    comment = await stream.talk.submit(who, body.get("text"))
    return web.Response(status=201, text=comment_json(comment, mine=True), content_type="application/json")


async def post_like(request: web.Request, stream: Stream) -> web.Response:
    _poster(request, stream)
    body = await json_body(request)
    stream.talk.like(body.get("count"), body.get("gift"))
    return web.Response(status=204)


async def list_comments(request: web.Request, stream: Stream) -> web.Response:
    check_host(request, stream)
    talk = stream.talk
    return web.json_response(
        {
            "stream": stream.name,
            "comments": [json.loads(comment_json(c)) | {"sub": c.sub} for c in talk.recent],
            "likes": {"total": talk.likes.total, "gifts": talk.likes.gifts},
            "accepted": talk.policy.accepted,
            "refused": talk.policy.refused,
            "display_dropped": talk.display.dropped,
            "banned": sorted(talk.policy.banned),
            "pinned": talk.pinned_id,
        }
    )


async def delete_comment(request: web.Request, stream: Stream) -> web.Response:
    check_host(request, stream)
    stream.talk.delete(int(request.match_info["comment"]))
    return web.Response(status=200, text="comment deleted\n", content_type="text/plain")


async def pin_comment(request: web.Request, stream: Stream) -> web.Response:
    """``POST .../comments/{id}/pin`` pins it for every viewer (in place of any other);
    ``DELETE`` unpins it (404 when it is not the pinned one)."""
    check_host(request, stream)
    comment_id = int(request.match_info["comment"])
    if request.method == "DELETE":
        stream.talk.unpin(comment_id)
        return web.Response(status=200, text="comment unpinned\n", content_type="text/plain")
    stream.talk.pin(comment_id)
    return web.Response(status=200, text="comment pinned\n", content_type="text/plain")


async def moderate(request: web.Request, stream: Stream) -> web.Response:
    """``{"action": "ban" | "unban" | "mute", "sub": "...", "seconds": 300}``."""
    check_host(request, stream)
    body = await json_body(request)
    action, sub, seconds = body.get("action"), body.get("sub"), body.get("seconds", 300)
    if not isinstance(sub, str) or not sub:
        raise BadRequest("moderation needs the viewer's sub")
    if action == "ban":
        stream.talk.ban(sub)
    elif action == "unban":
        stream.talk.unban(sub)
    elif action == "mute" and _seconds(seconds):
        stream.talk.mute(sub, float(seconds))
    else:
        raise BadRequest("action must be ban, unban or mute (with seconds from 1 to 86400)")
    return web.Response(status=200, text=f"{action} {sub}\n", content_type="text/plain")


def _seconds(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 86400


async def host_events(request: web.Request, stream: Stream) -> web.StreamResponse:
    """SSE for the host console: every accepted comment, removal and like total, as it happens."""
    check_host(request, stream)
    queue = stream.talk.subscribe()
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:  # cut off for falling behind: the console reconnects
                break
            await response.write(f"data: {item}\n\n".encode())
        return response
    except ConnectionResetError:
        return response
    finally:
        stream.talk.unsubscribe(queue)


StreamHandler = Callable[[web.Request, Stream], Awaitable[web.StreamResponse]]


def talk_routes(app: web.Application, stream_of: Callable[[web.Request], Stream]) -> None:
    """Register the conversation's routes; ``stream_of(request)`` resolves the URL's stream (404)."""
    base = r"/api/streams/{stream:[A-Za-z0-9_-]{1,64}}"

    def bind(handler: StreamHandler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(request, stream_of(request))

        return handle

    app.router.add_post(f"{base}/comments", bind(post_comment))
    app.router.add_get(f"{base}/comments", bind(list_comments))
    app.router.add_delete(base + r"/comments/{comment:\d{1,12}}", bind(delete_comment))
    app.router.add_post(base + r"/comments/{comment:\d{1,12}}/pin", bind(pin_comment))
    app.router.add_delete(base + r"/comments/{comment:\d{1,12}}/pin", bind(pin_comment))
    app.router.add_post(f"{base}/moderation", bind(moderate))
    app.router.add_post(f"{base}/likes", bind(post_like))
    app.router.add_get(f"{base}/comments/events", bind(host_events))

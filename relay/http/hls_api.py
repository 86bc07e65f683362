"""LL-HLS over HTTP: ``/hls/{stream}/index.m3u8`` (multivariant), each track's playlist (with
blocking reload), init segments, parts and segments.

Caching is what lets a CDN carry the audience: parts, segments and init segments never change
once served (their names carry the server run's epoch), so they are ``immutable``; playlists
change with every part, so they live for a second, except the answer to a blocking request,
which holds the part asked for and may be cached a little longer (what Apple's LL-HLS
guidelines expect of an origin). A protected stream's answers need the viewer's token and are
private (see hls_access).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from relay.cluster.hls_relay import HlsRelay
from relay.errors import BadRequest, MediaNotFound
from relay.http.hls_access import PRIVATE_MEDIA_CACHE, PRIVATE_PLAYLIST_CACHE, viewer_access, with_token
from relay.sessions.stream import Stream

PLAYLIST = "application/vnd.apple.mpegurl"
IMMUTABLE = "public, max-age=31536000, immutable"
PLAYLIST_CACHE = "public, max-age=1"
BLOCKING_CACHE = "public, max-age=6"  # a blocking answer holds the part it was asked for, whenever served


def _query_int(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 12:
        raise BadRequest(f"{name} must be a non-negative integer, got {text[:20]!r}")
    return int(text)


def hls_routes(app: web.Application, stream_of: Callable[[web.Request], Stream]) -> None:
    stream = r"{stream:[A-Za-z0-9_-]{1,64}}"
    track = r"{track:[A-Za-z0-9_-]{1,20}}"
    file = r"{file:[a-z0-9]{1,16}-[a-z0-9.]{1,40}}"

    def playlist_response(text: str, token: str | None, cache: str) -> web.Response:
        if token is not None:  # a protected stream: every URI carries the viewer's token
            text, cache = with_token(text, token), PRIVATE_PLAYLIST_CACHE
        return web.Response(text=text, content_type=PLAYLIST, headers={"Cache-Control": cache})

    async def multivariant(request: web.Request) -> web.Response:
        stream = stream_of(request)
        token = viewer_access(request, stream)
        return playlist_response(stream.hls_or_404().multivariant(), token, PLAYLIST_CACHE)

    async def playlist(request: web.Request) -> web.Response:
        msn = _query_int(request, "_HLS_msn")
        part = _query_int(request, "_HLS_part")
        if part is not None and msn is None:
            raise BadRequest("_HLS_part needs _HLS_msn")
        stream = stream_of(request)
        token = viewer_access(request, stream)
        text = await stream.hls_or_404().playlist(request.match_info["track"], msn, part)
        return playlist_response(text, token, BLOCKING_CACHE if msn is not None else PLAYLIST_CACHE)

    async def media(request: web.Request) -> web.Response:
        stream = stream_of(request)
        token = viewer_access(request, stream)
        name = request.match_info["track"]
        data = await stream.hls_or_404().media(name, request.match_info["file"])
        kind = "audio/mp4" if name == "audio" else "video/mp4"
        cache = IMMUTABLE if token is None else PRIVATE_MEDIA_CACHE
        return web.Response(body=data, content_type=kind, headers={"Cache-Control": cache})

    app.router.add_get(f"/hls/{stream}/index.m3u8", multivariant)
    app.router.add_get(f"/hls/{stream}/{track}/index.m3u8", playlist)
    app.router.add_get(f"/hls/{stream}/{track}/{file}", media)


def edge_hls_routes(
    app: web.Application,
    stream_of: Callable[[web.Request], Stream],
    relay_of: Callable[[web.Request], HlsRelay | None],
    origin_of: Callable[[web.Request, str], Awaitable[str]],
) -> None:
    """On an edge, the same URLs, relayed from each stream's origin (relay.cluster.hls_relay):
    the origin's playlists, part names, tokens and cache headers, unchanged."""
    stream = r"{stream:[A-Za-z0-9_-]{1,64}}"
    rest = r"{rest:(index\.m3u8|[A-Za-z0-9_-]{1,20}/(index\.m3u8|[a-z0-9]{1,16}-[a-z0-9.]{1,40}))}"

    async def relayed(request: web.Request) -> web.Response:
        name = stream_of(request).name  # 404 for a stream this edge does not serve
        relay = relay_of(request)
        if relay is None:
            raise MediaNotFound("this edge is not relaying HLS yet (it is starting)")
        query = f"?{request.query_string}" if request.query_string else ""
        fetched = await relay.get(lambda: origin_of(request, name), f"/hls/{name}/{request.match_info['rest']}{query}")
        return web.Response(
            status=fetched.status,
            body=fetched.body,
            headers={"Content-Type": fetched.content_type, "Cache-Control": fetched.cache_control},
        )

    app.router.add_get(f"/hls/{stream}/{rest}", relayed)

"""LL-HLS over HTTP: ``/hls/{stream}/index.m3u8`` (multivariant), each track's playlist (with
blocking reload), init segments, parts and segments.

Caching is what lets a CDN carry the audience: parts, segments and init segments never change
once served (their names carry the server run's epoch), so they are ``immutable``; playlists
change with every part, so they live for a second, except the answer to a blocking request,
which holds the part asked for and may be cached a little longer (what Apple's LL-HLS
guidelines expect of an origin).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from relay.errors import BadRequest
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

    async def multivariant(request: web.Request) -> web.Response:
        text = stream_of(request).hls_or_404().multivariant()
        return web.Response(text=text, content_type=PLAYLIST, headers={"Cache-Control": PLAYLIST_CACHE})

    async def playlist(request: web.Request) -> web.Response:
        msn = _query_int(request, "_HLS_msn")
        part = _query_int(request, "_HLS_part")
        if part is not None and msn is None:
            raise BadRequest("_HLS_part needs _HLS_msn")
        hls = stream_of(request).hls_or_404()
        text = await hls.playlist(request.match_info["track"], msn, part)
        cache = BLOCKING_CACHE if msn is not None else PLAYLIST_CACHE
        return web.Response(text=text, content_type=PLAYLIST, headers={"Cache-Control": cache})

    async def media(request: web.Request) -> web.Response:
        hls = stream_of(request).hls_or_404()
        name = request.match_info["track"]
        data = await hls.media(name, request.match_info["file"])
        kind = "audio/mp4" if name == "audio" else "video/mp4"
        return web.Response(body=data, content_type=kind, headers={"Cache-Control": IMMUTABLE})

    app.router.add_get(f"/hls/{stream}/index.m3u8", multivariant)
    app.router.add_get(f"/hls/{stream}/{track}/index.m3u8", playlist)
    app.router.add_get(f"/hls/{stream}/{track}/{file}", media)

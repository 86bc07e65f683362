"""Who may read a stream's HLS and recordings, and how a protected stream's playlists carry the
viewer's token to every URI they name (the rewriting is pure; ``viewer_access`` reads the request).

An open stream's playlists, parts and segments are public and cacheable by any CDN. A protected
stream (``viewer_secret`` set) needs the same viewer token for HLS as for WebRTC. HLS players
fetch the URIs a playlist names without adding headers (Safari's native player cannot, hls.js
would need code in every page), so a playlist fetched with ``?token=`` has that token added to
each URI it names: parts, segments, init sections, preload hints, rendition reports and the
multivariant playlist's media playlists. Such answers are per viewer: ``private`` for caches.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from aiohttp import web

from relay.http.input import viewer_token
from relay.sessions.stream import Stream

PRIVATE_PLAYLIST_CACHE = "private, max-age=1"
PRIVATE_MEDIA_CACHE = "private, max-age=31536000, immutable"

_URI_ATTRIBUTE = re.compile(r'(?<=[:,])URI="([^"]*)"')  # the attribute itself, not X-...-URI


def add_query(uri: str, name: str, value: str) -> str:
    """``uri`` with ``name=value`` added to its query (before any fragment)."""
    uri, hash_, fragment = uri.partition("#")
    separator = "&" if "?" in uri else "?"
    return f"{uri}{separator}{name}={quote(value, safe='')}{hash_}{fragment}"


def with_token(playlist: str, token: str) -> str:
    """``playlist`` with ``token=`` added to every URI it names (URI lines and ``URI="..."``)."""
    lines = []
    for line in playlist.split("\n"):
        if line.startswith("#"):
            line = _URI_ATTRIBUTE.sub(lambda m: f'URI="{add_query(m.group(1), "token", token)}"', line)
        elif line.strip():
            line = add_query(line, "token", token)
        lines.append(line)
    return "\n".join(lines)


def viewer_access(request: web.Request, stream: Stream) -> str | None:
    """The viewer token to pass on for a protected ``stream`` (None: the stream is open).

    Raises Unauthorized (no token) or Forbidden (a wrong, expired or banned one), as WHEP does.
    """
    if stream.config.viewer_secret is None:
        return None
    token = viewer_token(request)
    stream.check_viewer_token(token, time.time())
    return token

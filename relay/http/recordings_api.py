"""Recordings over HTTP: the list (``/api/streams/{stream}/recordings``), one recording with its
card chapters, its comments (``.../comments``: the conversation replayed beside the video, read
from the talk store with moderation applied), DELETE (host), the VOD playlists and media
(``/recordings/{stream}/{id}/...``), clips by time (``?start=&duration=``) and the replay page
(``/replay/{stream}/{id}``).

Thin: every file read runs in a worker thread (``RecordingLibrary``'s ``a...`` methods, aiohttp's
``FileResponse``); the playlists are built by ``relay.hls.vod``. Listing and replay are public,
as the live HLS is; deleting takes the host's key, as the card API does.

Caching: a finished recording never changes, so its playlists and media may be kept by a CDN;
one still being written has playlists that grow (and a last segment file that grows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from relay.errors import BadRequest, MediaNotFound, StreamBusy
from relay.hls.library import RecordingLibrary
from relay.hls.recording import Recording
from relay.hls.vod import Clip, Window, clip_window, multivariant, vod_playlist
from relay.http.cards_api import check_host
from relay.http.hls_access import PRIVATE_MEDIA_CACHE, PRIVATE_PLAYLIST_CACHE, viewer_access, with_token
from relay.sessions.stream import Stream

PLAYLIST = "application/vnd.apple.mpegurl"
FINAL_CACHE = "public, max-age=31536000, immutable"  # media of a finished recording
FINAL_PLAYLIST_CACHE = "public, max-age=3600"  # a finished recording's playlists (it may still be deleted)
GROWING_CACHE = "public, max-age=1"
MAX_REPLAY_COMMENTS = 20_000  # a replay's conversation, oldest first; past this it says "truncated"


def _clip(request: web.Request, *, required: bool) -> Clip | None:
    start, duration = request.query.get("start"), request.query.get("duration")
    if start is None and duration is None and not required:
        return None
    if start is None or duration is None:
        raise BadRequest("a clip needs both start and duration (seconds)")
    try:
        clip = Clip(float(start[:20]), float(duration[:20]))
    except ValueError:
        raise BadRequest(f"start and duration must be seconds, got {start[:20]!r} and {duration[:20]!r}") from None
    if not (math.isfinite(clip.start_s) and math.isfinite(clip.duration_s)):
        raise BadRequest("start and duration must be finite numbers of seconds")
    return clip


def summary(recording: Recording, *, active: bool, chapters: bool = False) -> dict[str, object]:
    span = recording.media_span()
    base = span[0] if span is not None else 0.0
    out: dict[str, object] = {
        "id": recording.id,
        "stream": recording.stream,
        "state": recording.state(active=active),
        "started_at": recording.started_at,
        "ended_at": recording.ended_at,
        "end_reason": recording.end_reason,
        "duration_s": round(span[1] - span[0], 3) if span is not None else 0.0,
        "bytes": recording.size(),
        "tracks": [
            {
                "name": t.info.name,
                "kind": t.info.kind,
                "width": t.info.width,
                "height": t.info.height,
                "codecs": t.info.codecs,
                "segments": len(t.playable()),
            }
            for t in recording.tracks.values()
        ],
        "card_events": len(recording.cards),
        "playlist": f"/recordings/{recording.stream}/{recording.id}/index.m3u8",
        "replay": f"/replay/{recording.stream}/{recording.id}",
    }
    if chapters:
        # "Jump to when the host showed this": every show (and update of a card on screen).
        out["chapters"] = [
            {"seq": c.seq, "at_s": round(max(0.0, c.pts_ms / 1000 - base), 3), "card": json.loads(c.card_json)}
            for c in recording.cards
            if c.action in ("show", "update")
        ]
    return out


def recordings_routes(
    app: web.Application,
    stream_of: Callable[[web.Request], Stream],
    library_of: Callable[[web.Request], RecordingLibrary],
    pages: Path,
) -> None:
    stream_part = r"{stream:[A-Za-z0-9_-]{1,64}}"
    rec = r"{rec:[0-9A-Za-z-]{1,40}}"
    track = r"{track:[A-Za-z0-9_-]{1,20}}"
    file = r"{file:(init[0-9]{1,6}\.mp4|[0-9]{1,9}\.m4s)}"

    def readable(request: web.Request) -> Stream:
        """The stream (404 if unknown); a protected one's recordings need a viewer token."""
        stream = stream_of(request)
        viewer_access(request, stream)
        return stream

    async def load(request: web.Request) -> tuple[RecordingLibrary, Recording, bool]:
        stream = readable(request)
        library = library_of(request)
        rec_id = request.match_info["rec"]
        # Whether it is being written, asked before reading it: a growing index may be read from
        # the cache (up to REPARSE_S old), which is right only for a recording still active.
        active = library.is_active(stream.name, rec_id)
        return library, await library.aload(stream.name, rec_id), active

    async def list_recordings(request: web.Request) -> web.Response:
        stream = readable(request)
        library = library_of(request)
        # Before reading (see load); a copy first: the recorders' threads change the set.
        active = {rec_id for name, rec_id in set(library.active) if name == stream.name}
        recordings = await library.arecordings(stream.name)
        return web.json_response(
            {
                "stream": stream.name,
                "recordings": [summary(r, active=r.id in active) for r in reversed(recordings)],
            }
        )

    async def get_recording(request: web.Request) -> web.Response:
        _, recording, active = await load(request)
        return web.json_response(summary(recording, active=active, chapters=True))

    async def recording_comments(request: web.Request) -> web.Response:
        """The conversation of the session, each comment at its moment in the recording."""
        stream = stream_of(request)
        _, recording, _active = await load(request)
        span = recording.media_span()
        if span is None:
            return web.json_response({"recording": recording.id, "comments": [], "truncated": False})
        base, end = span
        until = recording.ended_at if recording.ended_at is not None else recording.wall_at_zero + end
        found = await stream.talk.history(recording.started_at, until, MAX_REPLAY_COMMENTS + 1)
        comments = [
            {
                "id": c.id,
                "name": c.name,
                "role": c.role,
                "text": c.text,
                "at_s": round(min(max(0.0, c.pts_ms / 1000 - base), end - base), 3),
            }
            for c in found[:MAX_REPLAY_COMMENTS]
        ]
        truncated = len(found) > MAX_REPLAY_COMMENTS
        return web.json_response({"recording": recording.id, "comments": comments, "truncated": truncated})

    async def delete_recording(request: web.Request) -> web.Response:
        stream = stream_of(request)
        check_host(request, stream)
        library = library_of(request)
        rec_id = request.match_info["rec"]
        if library.is_active(stream.name, rec_id):
            raise StreamBusy(f"recording {rec_id} is being written; it can be deleted once the session ends")
        await library.adelete(stream.name, rec_id)
        return web.Response(text="recording deleted\n", content_type="text/plain")

    def window_of(request: web.Request, recording: Recording, *, required: bool = False) -> Window | None:
        clip = _clip(request, required=required)
        return None if clip is None else clip_window(recording, clip)

    def playlist_response(request: web.Request, text: str, final: bool) -> web.Response:
        cache = FINAL_PLAYLIST_CACHE if final else GROWING_CACHE
        token = viewer_access(request, stream_of(request))
        if token is not None:  # a protected stream: every URI carries the viewer's token
            text, cache = with_token(text, token), PRIVATE_PLAYLIST_CACHE
        return web.Response(text=text, content_type=PLAYLIST, headers={"Cache-Control": cache})

    async def master(request: web.Request) -> web.Response:
        _, recording, active = await load(request)
        clip = _clip(request, required=request.path.endswith("/clip.m3u8"))
        window = None if clip is None else clip_window(recording, clip)
        if recording.reference() is None:
            raise MediaNotFound(f"recording {recording.id} holds no media yet")
        leaf = "index.m3u8"
        if clip is not None:  # each media playlist of the clip, from the values as read (never the raw query)
            leaf += f"?start={clip.start_s:g}&duration={clip.duration_s:g}"
        final = window is not None or not active
        return playlist_response(request, multivariant(recording, leaf=leaf, window=window), final)

    async def media_playlist(request: web.Request) -> web.Response:
        _, recording, active = await load(request)
        name = request.match_info["track"]
        if name not in recording.tracks:
            raise MediaNotFound(f"recording {recording.id} has no track {name!r}")
        window = window_of(request, recording)
        final = window is not None or not active
        return playlist_response(request, vod_playlist(recording, name, final=final, window=window), final)

    async def media(request: web.Request) -> web.StreamResponse:
        stream = stream_of(request)
        token = viewer_access(request, stream)
        library = library_of(request)
        rec_id, name = request.match_info["rec"], request.match_info["track"]
        path = await library.amedia_file(stream.name, rec_id, name, request.match_info["file"])
        cache = GROWING_CACHE if library.is_active(stream.name, rec_id) else FINAL_CACHE
        if token is not None:
            cache = PRIVATE_PLAYLIST_CACHE if cache == GROWING_CACHE else PRIVATE_MEDIA_CACHE
        kind = "audio/mp4" if name == "audio" else "video/mp4"
        return web.FileResponse(path, headers={"Cache-Control": cache, "Content-Type": kind})

    async def replay_page(request: web.Request) -> web.StreamResponse:
        await load(request)  # 404 for an unknown recording
        return web.FileResponse(pages / "replay.html")

    api = f"/api/streams/{stream_part}/recordings"  # documented in relay/http/openapi.py
    app.router.add_get(api, list_recordings)
    app.router.add_get(f"{api}/{rec}", get_recording)
    app.router.add_delete(f"{api}/{rec}", delete_recording)
    app.router.add_get(f"{api}/{rec}/comments", recording_comments)
    base = f"/recordings/{stream_part}/{rec}"
    app.router.add_get(f"{base}/index.m3u8", master)
    app.router.add_get(f"{base}/clip.m3u8", master)
    app.router.add_get(f"{base}/{track}/index.m3u8", media_playlist)
    app.router.add_get(f"{base}/{track}/{file}", media)
    app.router.add_get(f"/replay/{stream_part}/{rec}", replay_page)

"""A protected stream's LL-HLS and recordings need the viewer's token, as its WebRTC does: without
one 401, with a wrong one 403 (one-line reasons); with one, every URI its playlists name carries
the token, so an HLS player that adds no headers plays it, and the answers are private to caches.
An open stream on the same server stays public and cacheable."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import av
import m3u8
import pytest

from benchmarks.peers import WhipPublisher
from relay.identity import mint
from tests.e2e.conftest import Server, start_server, stop_server, wait_until, write_config

KEY = "vip-publish-key-0123456789"
SECRET = "vip-viewer-secret-0123456789-0123456789"
STREAM = "vip"


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hls-protected")
    extra = (
        f'[streams.{STREAM}]\npublish_key = "{KEY}"\nviewer_secret = "{SECRET}"\n'
        f'[[streams.{STREAM}.ladder]]\nname = "240p"\nwidth = 426\nheight = 240\nkbps = 300\n'
    )
    config = write_config(tmp / "livecart.toml", extra)
    server = start_server(["--config", str(config), "--demo"], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    log = server.log()
    assert "Traceback" not in log and "internal error" not in log, log[-4000:]


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as res:
        return res.status, res.headers.get("Cache-Control", ""), await res.read()


def tokens_in(uri: str) -> list[str]:
    return parse_qs(urlsplit(uri).query).get("token", [])


async def refused_without_a_good_token(http: aiohttp.ClientSession, url: str) -> None:
    """``url`` (with its own ``token=`` stripped) answers 401 without a token, 403 with a forged one."""
    bare = url.split("token=")[0].rstrip("?&")
    status, _, body = await get(http, bare)
    assert status == 401 and b"viewer token" in body, (bare, status, body[:200])
    forged = mint("not-the-secret-0123456789-0123456789", STREAM, int(time.time()) + 600)
    separator = "&" if "?" in bare else "?"
    status, _, body = await get(http, f"{bare}{separator}token={forged}")
    assert status == 403 and body.strip() and b"\n" not in body.strip(), (status, body[:200])


async def test_protected_hls_and_recordings_need_the_token_and_carry_it_to_every_uri(server: Server) -> None:
    token = mint(SECRET, STREAM, int(time.time()) + 600, sub="buyer-1")
    async with aiohttp.ClientSession() as http:
        publisher = WhipPublisher(server.base, STREAM, KEY, width=640, height=360, audio=True, h264=True)
        await publisher.start(http)
        try:
            multivariant_url = f"{server.base}/hls/{STREAM}/index.m3u8?token={token}"

            async def served() -> bool:
                return (await get(http, multivariant_url))[0] == 200

            await wait_until(served, 20)
            await refused_without_a_good_token(http, multivariant_url)
            status, cache, body = await get(http, multivariant_url)
            assert cache.startswith("private"), cache
            master = m3u8.loads(body.decode(), uri=multivariant_url)
            media_urls = [urljoin(multivariant_url, p.uri) for p in master.playlists]
            media_urls += [urljoin(multivariant_url, m.uri) for m in master.media if m.uri]
            assert media_urls and all(tokens_in(u) == [token] for u in media_urls), media_urls
            video_url = urljoin(multivariant_url, master.playlists[0].uri)
            await refused_without_a_good_token(http, video_url)

            async def has_parts() -> bool:
                status, _, text = await get(http, video_url)
                return status == 200 and b"#EXT-X-PART:" in text

            await wait_until(has_parts, 20)
            status, cache, text = await get(http, video_url)
            assert cache.startswith("private"), cache
            playlist = m3u8.loads(text.decode(), uri=video_url)
            named = [part.uri for segment in playlist.segments for part in segment.parts]
            # (the open segment names no URI yet, only its parts)
            named += [s.uri for s in playlist.segments if s.uri] + [m.uri for m in playlist.segment_map]
            named += [playlist.preload_hint.uri] if playlist.preload_hint else []
            named += [r.uri for r in playlist.rendition_reports]
            assert named and all(tokens_in(uri) == [token] for uri in named), named
            init_url = urljoin(video_url, playlist.segment_map[0].uri)
            part_url = urljoin(video_url, playlist.segments[-1].parts[0].uri if playlist.segments[-1].parts else
                               playlist.segments[-1].uri)  # fmt: skip
            await refused_without_a_good_token(http, part_url)
            (s1, c1, init), (s2, c2, part) = await get(http, init_url), await get(http, part_url)
            assert (s1, s2) == (200, 200) and c1.startswith("private") and c2.startswith("private")
            with av.open(io.BytesIO(init + part)) as container:
                frames = list(container.decode(video=0))
            assert frames and (frames[0].width, frames[0].height) == (426, 240)

            # The open demo stream on the same server is unchanged: public, cacheable, no token.
            status, cache, _ = await get(http, f"{server.base}/hls/demo/index.m3u8")
            assert status == 200 and cache.startswith("public"), (status, cache)
        finally:
            await publisher.stop(http)

        listing_url = f"{server.base}/api/streams/{STREAM}/recordings?token={token}"

        async def recorded() -> bool:  # the session's recording, finished
            status, _, body = await get(http, listing_url)
            return status == 200 and any(r["state"] == "complete" for r in json.loads(body)["recordings"])

        await wait_until(recorded, 20)
        await refused_without_a_good_token(http, listing_url)
        status, _, body = await get(http, listing_url)
        recording = json.loads(body)["recordings"][0]["id"]
        vod_url = f"{server.base}/recordings/{STREAM}/{recording}/index.m3u8?token={token}"
        await refused_without_a_good_token(http, vod_url)
        status, cache, body = await get(http, vod_url)
        assert status == 200 and cache.startswith("private"), (status, cache)
        track_url = urljoin(vod_url, m3u8.loads(body.decode()).playlists[0].uri)
        status, _, body = await get(http, track_url)
        vod = m3u8.loads(body.decode(), uri=track_url)
        assert status == 200 and vod.is_endlist and vod.segments
        assert all(tokens_in(s.uri) == [token] for s in vod.segments)
        segment_url = urljoin(track_url, vod.segments[0].uri)
        await refused_without_a_good_token(http, segment_url)
        status, cache, _ = await get(http, segment_url)
        assert status == 200 and cache.startswith("private"), cache
        await refused_without_a_good_token(http, f"{server.base}/replay/{STREAM}/{recording}?token={token}")

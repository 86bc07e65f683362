"""The HTTP application: WHIP, WHEP, the stream API and the player pages.

Handlers stay thin: read and check the request, call the registry, shape the response.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from importlib import metadata, resources
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.sdp import advertise_address, check_publish_offer, check_view_offer, parse_offer, view_codec
from ingest.session import PeerSession
from relay.cluster.directory import Directory, LocalDirectory
from relay.cluster.node import ClusterNode
from relay.cluster.nodes import PULLING, Redirect
from relay.cluster.redis_directory import RedisDirectory
from relay.config import Config
from relay.errors import StreamBusy
from relay.http.cards_api import cards_routes
from relay.http.cluster_api import CLUSTER, cluster_routes, edge_writes_to_origin, redirect_to, redirect_to_url
from relay.http.deadlines import HeaderDeadlines
from relay.http.framing import CONSOLE_POLICY, player_policy
from relay.http.hls_api import edge_hls_routes, hls_routes
from relay.http.input import check_bearer, read_body, viewer_token
from relay.http.middleware import METRICS, Handler, cors_middleware, error_middleware, status_middleware
from relay.http.openapi import document
from relay.http.recordings_api import recordings_routes
from relay.http.talk_api import talk_routes
from relay.http.tokens_api import post_token
from relay.observe.looplag import LoopLagMonitor
from relay.observe.metrics import Metrics
from relay.observe.process import open_fds
from relay.ratelimit import ClientLimiter
from relay.sessions.nofile import budget_report, current_soft_limit
from relay.sessions.registry import Registry
from transcode.frames import VP8

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", Registry)
LOOP_LAG = web.AppKey("loop_lag", LoopLagMonitor)
CLIENT_LIMIT = web.AppKey("client_limit", ClientLimiter)

async def preflight(request: web.Request) -> web.Response:
    headers = CIMultiDict(
        {
            # PATCH: RFC 9725 trickle ICE; without it players that trickle (MediaMTX's reader,
            # medooze's whip-whep) fail in the preflight and never play.
            "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
            "Access-Control-Max-Age": "86400",
            "Accept-Post": "application/sdp",
        }
    )
    for link in ice_links(request.app[CONFIG]):
        headers.add("Link", link)
    return web.Response(status=204, headers=headers)


def ice_links(config: Config) -> list[str]:
    """RFC 9725 section 4.6: STUN/TURN servers handed to clients as ``Link`` headers."""
    links = []
    server = config.server
    for url in server.ice_servers:
        link = f'<{url}>; rel="ice-server"'
        if url.startswith("turn") and server.turn_username and server.turn_credential:
            link += f'; username="{server.turn_username}"; credential="{server.turn_credential}"'
            link += '; credential-type="password"'
        links.append(link)
    return links


def _created(request: web.Request, location: str, answer: str, etag: str) -> web.Response:
    config = request.app[CONFIG]
    if config.server.public_ip:
        answer = advertise_address(answer, config.server.public_ip)
    headers = CIMultiDict({"Location": location, "ETag": f'"{etag}"'})
    for link in ice_links(config):
        headers.add("Link", link)
    return web.Response(status=201, text=answer, content_type="application/sdp", headers=headers)


def _client_gone(request: web.Request) -> bool:
    """The client dropped the connection while we negotiated: nobody will use the session."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _limit_client(request: web.Request) -> None:
    request.app[CLIENT_LIMIT].check(request.remote or "unknown", time.monotonic())


async def whip_post(request: web.Request) -> web.Response:
    _limit_client(request)
    registry = request.app[REGISTRY]
    limits = request.app[CONFIG].limits
    stream = registry.stream(request.match_info["stream"])
    if request.app[CLUSTER].role in PULLING:
        raise StreamBusy(f"this node is an {request.app[CLUSTER].role}: publish {stream.name!r} to an origin")
    check_bearer(request, stream.config.publish_key)
    sdp = await read_body(
        request, content_type="application/sdp", max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s
    )
    offer = parse_offer(sdp, max_media_sections=limits.max_media_sections)
    check_publish_offer(offer)
    await registry.webhooks.allow_publish(stream.name, request.remote)
    session_id, answer = await registry.open_publisher(stream, sdp, offer)
    if _client_gone(request):
        await registry.close_publisher(stream.name, session_id, "client left before the answer")
        raise web.HTTPBadRequest(text="client went away")
    etag = registry.publisher(stream.name, session_id).etag
    return _created(request, f"/whip/{stream.name}/{session_id}", answer, etag)


def _ended(closed_now: bool) -> web.Response:
    text = "session ended\n" if closed_now else "session had already ended\n"
    return web.Response(status=200, text=text, content_type="text/plain")


async def whip_delete(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return _ended(await registry.close_publisher(request.match_info["stream"], request.match_info["session"]))


async def _patch(request: web.Request, session: PeerSession) -> web.Response:
    """RFC 9725 section 4.3: trickle ICE (204) or an ICE restart (422: aiortc cannot do one)."""
    limits = request.app[CONFIG].limits
    body = await read_body(
        request,
        content_type="application/trickle-ice-sdpfrag",
        max_bytes=limits.max_body_bytes,
        timeout_s=limits.body_timeout_s,
    )
    await session.patch(body, request.headers.get("If-Match"))
    return web.Response(status=204, headers={"ETag": f'"{session.etag}"'})


async def whip_patch(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return await _patch(request, registry.publisher(request.match_info["stream"], request.match_info["session"]))


async def whep_patch(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return await _patch(request, registry.viewer(request.match_info["stream"], request.match_info["session"]))


async def whep_post(request: web.Request) -> web.Response:
    _limit_client(request)
    registry = request.app[REGISTRY]
    limits = request.app[CONFIG].limits
    stream = registry.stream(request.match_info["stream"])
    cluster = request.app[CLUSTER]
    route = cluster.route(redirected="via" in request.query, avoid=request.query.get("avoid"))
    if isinstance(route, Redirect):
        return redirect_to(request, route.node, cluster.node_id)
    identity = stream.check_viewer_token(viewer_token(request), time.time())
    sdp = await read_body(
        request, content_type="application/sdp", max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s
    )
    offer = parse_offer(sdp, max_media_sections=limits.max_media_sections)
    check_view_offer(offer)
    if cluster.role in PULLING and view_codec(offer) == VP8:
        # An edge forwards the origin's H.264 rungs and has no decoder to feed a VP8 encoder.
        origin = await cluster.origin_url(stream.name)
        return redirect_to_url(request, origin, "the stream's origin", cluster.node_id)
    await registry.webhooks.allow_viewer(stream.name, request.remote)
    cluster.check_room(stream)  # the stream's viewer limit across every node of the cluster
    await cluster.prepare_viewer(stream)  # an edge pulls the stream for its first viewer
    rendition = request.query.get("rendition", "auto")
    session_id, answer = await registry.open_viewer(stream, sdp, offer, rendition, identity)
    if _client_gone(request):
        await registry.close_viewer(stream.name, session_id, "client left before the answer")
        raise web.HTTPBadRequest(text="client went away")
    etag = registry.viewer(stream.name, session_id).etag
    return _created(request, f"/whep/{stream.name}/{session_id}", answer, etag)


async def whep_delete(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return _ended(await registry.close_viewer(request.match_info["stream"], request.match_info["session"]))


def _snapshot(app: web.Application) -> dict[str, object]:
    snapshot = app[REGISTRY].snapshot()
    snapshot["loop"] = app[LOOP_LAG].snapshot()
    if CLUSTER in app:
        snapshot["cluster"] = app[CLUSTER].counters()
    return snapshot


async def api_streams(request: web.Request) -> web.Response:
    snapshot = _snapshot(request.app)
    if request.query.get("reset_loop_lag") == "1":  # start a fresh measurement window
        request.app[LOOP_LAG].reset()
    return web.json_response(snapshot)


async def api_stream(request: web.Request) -> web.Response:
    stream = request.app[REGISTRY].stream(request.match_info["stream"])
    return web.json_response(stream.snapshot())


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", content_type="text/plain")


def _pages_dir() -> Path:
    return Path(str(resources.files("player_demo")))


async def page_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_pages_dir() / "index.html")


def _page(name: str, frame_policy: str) -> Handler:
    """A stream's page; ``frame_policy`` says who may frame it (relay.http.framing)."""
    headers = {"Content-Security-Policy": frame_policy}

    async def serve(request: web.Request) -> web.StreamResponse:
        request.app[REGISTRY].stream(request.match_info["stream"])  # 404 for unknown streams
        return web.FileResponse(_pages_dir() / name, headers=headers)

    return serve


async def embed_script(request: web.Request) -> web.FileResponse:
    """The one-tag embed for shop pages (``<livecart-player>``), at a URL that stays put."""
    return web.FileResponse(_pages_dir() / "embed.js", headers={"Cache-Control": "public, max-age=300"})


def _version() -> str:
    try:
        return metadata.version("livecart")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


def build_app(config: Config, deadlines: HeaderDeadlines | None = None) -> web.Application:
    """The whole server as an aiohttp application; the registry lives in its cleanup context."""
    first = [deadlines.mark_started] if deadlines is not None else []
    middlewares = [*first, status_middleware, cors_middleware, error_middleware]
    if config.cluster.role in PULLING:
        middlewares.append(edge_writes_to_origin)
    app = web.Application(middlewares=middlewares)
    app[CONFIG] = config
    app[CLIENT_LIMIT] = ClientLimiter(config.limits.posts_per_s_per_ip, config.limits.posts_burst)

    async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
        lag = LoopLagMonitor()
        lag.start()
        app[LOOP_LAG] = lag
        registry = Registry(config, fd_limit=current_soft_limit())
        registry.start()
        app[REGISTRY] = registry
        info, warning = budget_report(registry.admission.limits, open_fds(), config.limits.max_viewers_total)
        log.info("%s", info)
        if warning is not None:
            log.warning("%s", warning)
        app[METRICS] = Metrics(lambda: _snapshot(app))
        directory: Directory = RedisDirectory(config.cluster.url) if config.cluster.url else LocalDirectory()
        app[CLUSTER] = ClusterNode(config, registry, directory)  # beats once listening (relay.cli)
        if config.server.demo and config.cluster.role not in PULLING:  # an edge pulls its streams
            registry.start_demo(registry.stream("demo"))
        yield
        await app[CLUSTER].close()
        await registry.close()
        await lag.close()

    app.cleanup_ctx.append(registry_ctx)
    stream = r"{stream:[A-Za-z0-9_-]{1,64}}"
    session = r"{session:[A-Za-z0-9_-]{1,64}}"
    app.router.add_post(f"/whip/{stream}", whip_post)
    app.router.add_route("OPTIONS", f"/whip/{stream}", preflight)
    app.router.add_delete(f"/whip/{stream}/{session}", whip_delete)
    app.router.add_patch(f"/whip/{stream}/{session}", whip_patch)
    app.router.add_route("OPTIONS", f"/whip/{stream}/{session}", preflight)
    app.router.add_post(f"/whep/{stream}", whep_post)
    app.router.add_route("OPTIONS", f"/whep/{stream}", preflight)
    app.router.add_delete(f"/whep/{stream}/{session}", whep_delete)
    app.router.add_patch(f"/whep/{stream}/{session}", whep_patch)
    app.router.add_route("OPTIONS", f"/whep/{stream}/{session}", preflight)
    cluster_routes(app)
    app.router.add_get("/api/streams", api_streams)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get(f"/api/streams/{stream}", api_stream)
    cards_routes(app, lambda request: request.app[REGISTRY].stream(request.match_info["stream"]))
    talk_routes(app, lambda request: request.app[REGISTRY].stream(request.match_info["stream"]))

    async def tokens(request: web.Request) -> web.StreamResponse:
        return await post_token(request, request.app[REGISTRY].stream(request.match_info["stream"]))

    app.router.add_post(f"/api/streams/{stream}/tokens", tokens)
    openapi = json.dumps(document(_version()), indent=1)

    async def openapi_json(request: web.Request) -> web.StreamResponse:
        return web.Response(text=openapi, content_type="application/json")

    app.router.add_get("/api/openapi.json", openapi_json)
    if config.cluster.role in PULLING:  # an edge relays its origins' LL-HLS, packaged once there
        edge_hls_routes(
            app,
            lambda request: request.app[REGISTRY].stream(request.match_info["stream"]),
            lambda request: request.app[CLUSTER].hls,
            lambda request, name: request.app[CLUSTER].origin_url(name),
        )
    else:
        hls_routes(app, lambda request: request.app[REGISTRY].stream(request.match_info["stream"]))
    recordings_routes(
        app,
        lambda request: request.app[REGISTRY].stream(request.match_info["stream"]),
        lambda request: request.app[REGISTRY].recordings,
        _pages_dir(),
    )
    app.router.add_get("/", page_index)
    app.router.add_get(f"/watch/{stream}", _page("watch.html", player_policy(config.server.embed_origins)))
    app.router.add_get(f"/publish/{stream}", _page("publish.html", CONSOLE_POLICY))
    app.router.add_get(f"/host/{stream}", _page("host.html", CONSOLE_POLICY))
    app.router.add_get("/player/embed.js", embed_script)
    app.router.add_static("/static", _pages_dir(), show_index=False)
    return app

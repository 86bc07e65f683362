"""The cluster's HTTP surface: edges pulling from an origin, redirects, and ``GET /api/cluster``.

- ``POST /cluster/pull/{stream}?rungs=720p,480p&node=ID`` (``Authorization: Bearer <cluster
  token>``, an SDP offer with one recvonly video section per rung, audio and a ``cards`` data
  channel) -> ``201`` + ``Location`` + answer: the edge's pull (``relay.sessions.pullserve``);
  ``DELETE`` on the ``Location`` ends it. Only an origin takes pulls.
- A WHEP POST that this node should not serve gets ``307 Temporary Redirect`` to the chosen
  edge's ``/whep/{stream}``, with the query kept and ``via=<this node>`` added (a redirected
  request is served where it lands, never redirected again). An edge sends a VP8-only viewer
  to the stream's origin the same way: only the origin decodes, so only it can encode VP8.
- On an edge, card writes (the host API) are redirected to the stream's origin, which owns the
  catalogue; the edges mirror its events.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from relay.cluster.node import ClusterNode
from relay.cluster.nodes import PULLING, NodeLoad
from relay.cluster.origin_proxy import MAX_BODY as MAX_RELAYED_BODY
from relay.errors import LimitReached, StreamNotFound
from relay.http.input import check_bearer, read_body, read_limited
from relay.http.middleware import Handler
from relay.sessions.pullserve import parse_rungs

CLUSTER = web.AppKey("cluster", ClusterNode)


def redirect_to(request: web.Request, node: NodeLoad, me: str) -> web.Response:
    """307 to the same request on ``node`` (RFC 9725 allows it; clients resend the body)."""
    return redirect_to_url(request, node.url, node.node_id, me)


def redirect_to_url(request: web.Request, base_url: str, name: str, me: str) -> web.Response:
    """307 to the same request on the node at ``base_url``, marked ``via=me`` (served there)."""
    query = [(k, v) for k, v in request.query.items() if k != "via"] + [("via", me)]
    location = f"{base_url.rstrip('/')}{request.path}?{urlencode(query)}"
    return web.Response(status=307, headers={"Location": location}, text=f"served by {name}\n")


async def pull_post(request: web.Request) -> web.Response:
    node = request.app[CLUSTER]
    config, registry = node.config, node.registry
    if node.role not in ("origin", "relay"):
        raise StreamNotFound(f"node {node.node_id} is an {node.role} node: pull from the stream's origin or a relay")
    check_bearer(request, config.cluster.token or "")
    stream = registry.stream(request.match_info["stream"])
    if node.role == "relay":
        await node.prepare_viewer(stream)
        if not stream.sizes():
            reason = f"relay {node.node_id} is still pulling {stream.name!r} from its origin"
            raise LimitReached(reason, retry_after_s=1)
    limits = config.limits
    sdp = await read_body(
        request, content_type="application/sdp", max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s
    )
    rungs = parse_rungs(request.query.get("rungs", ""), stream)
    edge = request.query.get("node") or request.remote or "unknown"
    session_id, answer = await registry.open_pull(stream, sdp, rungs, edge[:128])
    return web.Response(
        status=201,
        text=answer,
        content_type="application/sdp",
        headers={"Location": f"/cluster/pull/{stream.name}/{session_id}"},
    )


async def pull_rungs(request: web.Request) -> web.Response:
    """``GET /cluster/pull/{stream}``: what a pull of the stream would carry now (the stream as
    ``/api/streams/{stream}`` shows it). On a relay, asking starts the relay's own pull of the
    stream, so the asking edge finds it live moments later."""
    node = request.app[CLUSTER]
    if node.role not in ("origin", "relay"):
        raise StreamNotFound(f"node {node.node_id} is an {node.role} node: pull from the stream's origin or a relay")
    check_bearer(request, node.config.cluster.token or "")
    stream = node.registry.stream(request.match_info["stream"])
    if node.role == "relay":
        await node.prepare_viewer(stream)
    return web.json_response(stream.snapshot())


async def pull_delete(request: web.Request) -> web.Response:
    registry = request.app[CLUSTER].registry
    closed = await registry.close_pull(request.match_info["stream"], request.match_info["session"])
    return web.Response(status=200, text="pull ended\n" if closed else "pull had already ended\n")


async def api_cluster(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CLUSTER].snapshot())


TALK = (["comments"], ["likes"], ["moderation"])


@web.middleware
async def edge_writes_to_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On an edge, what the origin owns is the origin's: the host API's card writes and orders
    are redirected there (307), and the conversation's HTTP API (posting, the host's list,
    deletions, moderation) is relayed there (relay.cluster.origin_proxy says why not redirected),
    but for the host's live feed, redirected. Viewers' data-channel talk goes on the pull."""
    node = request.app.get(CLUSTER)
    path = request.path
    if node is None or node.role not in PULLING or not path.startswith("/api/streams/") or request.method == "OPTIONS":
        return await handler(request)
    parts = path.split("/")
    stream, talk = parts[3], parts[4:5] in TALK
    writes_cards = request.method in ("POST", "DELETE") and ("/cards" in path or path.endswith("/orders"))
    if writes_cards or (talk and path.endswith("/comments/events")):
        origin = await node.origin_url(stream)
        query = f"?{request.query_string}" if request.query_string else ""
        return web.Response(status=307, headers={"Location": f"{origin.rstrip('/')}{path}{query}"})
    if talk:
        body = await read_limited(request, MAX_RELAYED_BODY)
        origin = await node.origin_url(stream)
        answer = await node.ask_origin(origin, request.method, request.path_qs, dict(request.headers), body)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    return await handler(request)


def cluster_routes(app: web.Application) -> None:
    """Register the cluster routes; the node itself is put in ``app[CLUSTER]`` at startup."""
    stream = r"{stream:[A-Za-z0-9_-]{1,64}}"
    session = r"{session:[A-Za-z0-9_-]{1,64}}"
    app.router.add_post(f"/cluster/pull/{stream}", pull_post)
    app.router.add_get(f"/cluster/pull/{stream}", pull_rungs)
    app.router.add_delete(f"/cluster/pull/{stream}/{session}", pull_delete)
    app.router.add_get("/api/cluster", api_cluster)

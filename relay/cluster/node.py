"""This process as a cluster node: its heartbeat, its routing decisions, and (on an edge) its pulls.

The heartbeat writes the node's load and, on an origin, "stream -> this node" for every stream
it ingests, both with a TTL; it also reads the node list, which every routing decision then
uses from memory (a join costs no Redis call). When the directory is unreachable the heartbeat
logs one line and keeps trying; sessions and media never wait on it, so viewers keep watching.
Routing degrades rather than fails: an edge serves a join itself while its view of the cluster
is stale, and a join that needs the directory (an edge that has never pulled the stream and
knows no origin for it) gets a 503 naming the directory. When Redis returns, the next heartbeat
registers the node again (the entries are rewritten whole every time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from relay.cluster.directory import Directory, DirectoryUnavailable, LocalDirectory
from relay.cluster.hls_relay import HlsRelay, OriginUnavailable
from relay.cluster.linger import PullLinger
from relay.cluster.nodes import (
    PULLING,
    ROLES,
    EdgeChooser,
    NodeLoad,
    Redirect,
    Role,
    alive,
    pick_relay,
    route_viewer,
    viewers_elsewhere,
)
from relay.cluster.origin_proxy import Answer, ask_origin
from relay.config import Config
from relay.errors import LimitReached
from relay.sessions.admission import Kind
from relay.sessions.registry import Registry
from relay.sessions.stream import Stream
from relay.sessions.upstream import EdgeUpstream

log = logging.getLogger(__name__)


class NoOrigin(LimitReached):
    """No live origin holds the stream (yet): an edge has nothing to pull."""


class ClusterNode:
    """Owns this node's heartbeat task, its directory connection, and an edge's pulls."""

    def __init__(self, config: Config, registry: Registry, directory: Directory | None = None) -> None:
        cluster = config.cluster
        self.config = config
        self.role: Role = cluster.role if cluster.role in ROLES else "all"  # type: ignore[assignment]
        self.registry = registry
        self.directory: Directory = directory or LocalDirectory()
        self.node_id = cluster.node_id or ""
        self.url = cluster.advertise_url or ""
        self.level = cluster.relay_level if self.role == "relay" else 0
        self.chooser = EdgeChooser(cluster.dead_after_s)
        self.linger = PullLinger(cluster.pull_grace_s)
        self.upstreams: dict[str, EdgeUpstream] = {}
        self._nodes: list[NodeLoad] = []
        self._nodes_at: float | None = None  # when the node list was last read (monotonic)
        self._origins: dict[str, str] = {}  # stream -> origin URL last seen (used while Redis is down)
        self._reachable: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.hls: HlsRelay | None = None  # an edge's relay of its origins' LL-HLS
        self._cpu = (time.process_time(), time.monotonic())
        self._bytes = (0, time.monotonic())
        self.heartbeats = 0
        self.heartbeat_failures = 0

    # ---- lifetime -----------------------------------------------------------------------------
    def start(self, url: str) -> None:
        """Start beating, as reachable at ``url`` (known once the server listens)."""
        self.url = self.config.cluster.advertise_url or url
        self.node_id = self.config.cluster.node_id or self.url.split("://", 1)[-1]
        if self.role == "all":
            return
        self._http = aiohttp.ClientSession()
        if self.role in PULLING:
            self.hls = HlsRelay(self._http)
        self._task = asyncio.get_running_loop().create_task(self._beat(), name=f"cluster {self.node_id} heartbeat")
        level = f", level {self.level}" if self.role == "relay" else ""
        log.info("cluster: node %s (%s%s) at %s", self.node_id, self.role, level, self.url)

    async def close(self) -> None:
        """Stop beating, stop every pull, and leave the directory (best effort)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*(u.close("node stopping") for u in self.upstreams.values()), return_exceptions=True)
        self.upstreams.clear()
        if self.hls is not None:
            await self.hls.close()
        if self.role != "all":
            try:
                await self.directory.leave(self.node_id, self._origin_streams())
            except DirectoryUnavailable as exc:
                log.info("cluster: could not leave the directory: %s", exc.reason)
        await self.directory.close()
        if self._http is not None:
            await self._http.close()

    # ---- the heartbeat ------------------------------------------------------------------------
    def _origin_streams(self) -> tuple[str, ...]:
        if self.role != "origin":
            return ()
        return tuple(s.name for s in self.registry.streams.values() if s.live)

    def load(self, now: float) -> NodeLoad:
        cpu_then, mono_then = self._cpu
        cpu, mono = time.process_time(), time.monotonic()
        self._cpu = (cpu, mono)
        sent = sum(s.fanout.bytes_forwarded for s in self.registry.streams.values())
        sent_then, bytes_at = self._bytes
        self._bytes = (sent, mono)
        held = self._origin_streams() if self.role == "origin" else tuple(sorted(self.upstreams))
        admission = self.registry.admission
        per_stream = tuple(
            (name, count) for name in sorted(self.registry.streams) if (count := admission.count(Kind.VIEWER, name))
        )
        return NodeLoad(
            node_id=self.node_id,
            role=self.role,
            url=self.url,
            at=now,
            viewers=self.registry.admission.count(Kind.VIEWER),
            cpu=(cpu - cpu_then) / max(1e-6, mono - mono_then),
            bytes_per_s=(sent - sent_then) / max(1e-6, mono - bytes_at),
            streams=held,
            stream_viewers=per_stream,
            level=self.level,
        )

    async def _beat(self) -> None:
        interval = self.config.cluster.heartbeat_s
        ttl = self.config.cluster.dead_after_s
        while True:
            await self.heartbeat_once(ttl)
            self._check_sources()
            await self._drop_idle_pulls()
            await asyncio.sleep(interval)

    async def heartbeat_once(self, ttl_s: float) -> None:
        try:
            await self.directory.heartbeat(self.load(time.time()), self._origin_streams(), ttl_s)
            self._nodes = await self.directory.nodes()
            self._nodes_at = time.monotonic()
        except DirectoryUnavailable as exc:
            self.heartbeat_failures += 1
            if self._reachable is not False:
                log.warning("cluster: %s; sessions and media go on, retrying every heartbeat", exc.reason)
            self._reachable = False
            return
        self.heartbeats += 1
        if self._reachable is False:
            log.info("cluster: directory reachable again; node %s registered", self.node_id)
        self._reachable = True
        for node in self._nodes:
            for stream in node.streams if node.role == "origin" else ():
                self._origins[stream] = node.url

    def _check_sources(self) -> None:
        """A pull whose source (a relay, or the origin) the directory no longer lists as alive is
        made again now, from another relay or the origin; a pull served to a node the directory
        no longer lists is ended (nothing is decided on a stale list)."""
        nodes = self.fresh_nodes()
        if nodes is None:
            return
        living = alive(nodes, time.time(), self.config.cluster.dead_after_s)
        ids = {n.node_id for n in living}
        settled = time.monotonic() - self.config.cluster.dead_after_s  # a new node may not be listed yet
        for pull in list(self.registry.pulls.values()):
            if pull.node not in ids and pull.opened_at < settled:
                pull.close_soon(f"its node {pull.node} is gone from the directory")
        live = {n.url for n in living}
        for upstream in self.upstreams.values():
            if upstream.connected and upstream.origin is not None and upstream.origin not in live:
                upstream.source_lost(f"its source {upstream.origin} is gone from the directory")

    async def _drop_idle_pulls(self) -> None:
        # A relay's pulls served count as viewers: it keeps its own pull while edges pull from it.
        counts = {name: len(s.viewers) + len(s.pulls) for name, s in self.registry.streams.items()}
        for name in self.linger.observe(counts, time.monotonic()):
            upstream = self.upstreams.pop(name, None)
            if upstream is not None:
                await upstream.close(f"no viewer for {self.linger.grace_s:g} s")

    # ---- routing ------------------------------------------------------------------------------
    def fresh_nodes(self) -> list[NodeLoad] | None:
        """The node list, if read within ``dead_after_s`` (else the directory is out of reach)."""
        if self._nodes_at is None or time.monotonic() - self._nodes_at > self.config.cluster.dead_after_s:
            return None
        return self._nodes

    def route(self, redirected: bool, avoid: str | None = None) -> Redirect | Literal["serve"]:
        """Where a WHEP POST that arrived here should go (see ``relay.cluster.nodes.route_viewer``);
        ``avoid``: the HOST:PORT of a node the viewer just lost. With no fresh view of the
        cluster, every node serves the viewer itself."""
        if self.role == "all":
            return "serve"
        nodes = self.fresh_nodes()
        if nodes is None:
            return "serve"
        now = time.time()
        lost = {n.node_id for n in nodes if avoid and urlsplit(n.url).netloc == avoid}
        decision = route_viewer(self.chooser, self.load_now(now), nodes, now, redirected=redirected, avoid=lost)
        if isinstance(decision, Redirect):
            self.chooser.sent(decision.node, now)
        return decision

    def load_now(self, now: float) -> NodeLoad:
        """This node's load as routing sees it: its viewers right now (not at its last beat)."""
        viewers = self.registry.admission.count(Kind.VIEWER)
        return NodeLoad(self.node_id, self.role, self.url, now, viewers=viewers, level=self.level)

    async def ask_origin(self, origin: str, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Answer:
        """Relay one HTTP request to ``origin`` (relay.cluster.origin_proxy)."""
        if self._http is None:
            raise OriginUnavailable("this edge is starting")
        return await ask_origin(self._http, origin, method, path_qs, headers, body)

    async def upstream_url(self, stream: str) -> str:
        """Where this node pulls ``stream`` from now (``relay.cluster.nodes.pick_relay``): an edge
        from a live relay of the deepest level, a relay at level n from one under n, and either
        from the origin when no relay fits (always so for a level-1 relay)."""
        if self.role in PULLING:
            nodes, dead_after = self.fresh_nodes() or [], self.config.cluster.dead_after_s
            below = self.level if self.role == "relay" else None
            relay = pick_relay(stream, self.node_id, nodes, time.time(), dead_after, below=below)
            if relay is not None:
                return relay.url
        return await self.origin_url(stream)

    async def origin_url(self, stream: str) -> str:
        """The base URL of ``stream``'s origin: from the directory, or the last one seen while the
        directory is out of reach. NoOrigin (503) when none holds it, DirectoryUnavailable when
        it cannot be asked and none was ever seen."""
        try:
            node_id = await self.directory.origin_of(stream)
        except DirectoryUnavailable:
            known = self._origins.get(stream)
            if known is None:
                raise
            return known
        if node_id is None:
            raise NoOrigin(f"stream {stream!r} has no live origin in the cluster", retry_after_s=2)
        nodes = self.fresh_nodes() or []
        node = next((n for n in nodes if n.node_id == node_id), None)
        if node is None:
            node = next((n for n in await self.directory.nodes() if n.node_id == node_id), None)
        if node is None:
            raise NoOrigin(f"stream {stream!r}: its origin {node_id} is gone", retry_after_s=2)
        self._origins[stream] = node.url
        return node.url

    def check_room(self, stream: Stream) -> None:
        """The stream's viewer limit holds across the cluster: this node's viewers of it plus the
        other live nodes' (from their last heartbeats) must leave room for one more. Skipped while
        the node list is stale (the directory is down): each node then enforces only its own."""
        nodes = self.fresh_nodes()
        if self.role == "all" or nodes is None:
            return
        limit = stream.config.max_viewers or self.config.limits.max_viewers_per_stream
        watching = self.cluster_viewers(stream.name, nodes, time.time())
        if watching >= limit:
            raise LimitReached(
                f"stream {stream.name!r} is full: {watching} of {limit} viewers across the cluster", retry_after_s=5
            )

    def cluster_viewers(self, stream: str, nodes: list[NodeLoad], now: float) -> int:
        """Viewers of ``stream`` here (now) and on the other live nodes (their last heartbeats)."""
        here = self.registry.admission.count(Kind.VIEWER, stream)
        return here + viewers_elsewhere(nodes, self.node_id, stream, now, self.config.cluster.dead_after_s)

    async def prepare_viewer(self, stream: Stream) -> None:
        """On an edge, before a viewer of ``stream`` is admitted (on a relay, before an edge's
        pull): pull the stream unless this node already does (the first viewer's join needs to
        know the origin; later ones do not)."""
        if self.role not in PULLING or stream.name in self.upstreams:
            if stream.name in self.upstreams:
                self.linger.started(stream.name, time.monotonic())
            return
        await self.origin_url(stream.name)  # 503 now rather than a viewer waiting on nothing
        assert self._http is not None
        token = self.config.cluster.token or ""
        upstream = EdgeUpstream(
            stream,
            locate=lambda: self.upstream_url(stream.name),
            token=token,
            node_id=self.node_id,
            http=self._http,
            setup_timeout_s=self.config.limits.setup_timeout_s,
        )
        self.upstreams[stream.name] = upstream
        self.linger.started(stream.name, time.monotonic())
        upstream.start()

    # ---- introspection ------------------------------------------------------------------------
    def counters(self) -> dict[str, object]:
        """For ``/metrics`` (no directory call): heartbeats, reachability, pulls in and out."""
        return {
            "role": self.role,
            "heartbeats": self.heartbeats,
            "heartbeat_failures": self.heartbeat_failures,
            "directory_reachable": self._reachable is not False,
            "nodes_alive": len(alive(self._nodes, time.time(), self.config.cluster.dead_after_s)),
            "pulls_out": len(self.upstreams),
            "pulls_in": len(self.registry.pulls),
            **({"hls_relay": self.hls.counters()} if self.hls is not None else {}),
        }

    async def snapshot(self) -> dict[str, object]:
        """``GET /api/cluster``: every node with its load and streams, as the directory has them."""
        now = time.time()
        try:
            nodes = await self.directory.nodes() if self.role != "all" else [self.load_now(now)]
            reachable = True
        except DirectoryUnavailable:
            nodes, reachable = self._nodes, False
        dead_after = self.config.cluster.dead_after_s
        live = {n.node_id for n in alive(nodes, now, dead_after)}
        return {
            "node": self.node_id,
            "role": self.role,
            "directory": "redis" if self.role != "all" else "local",
            "directory_reachable": reachable,
            "heartbeats": self.heartbeats,
            "heartbeat_failures": self.heartbeat_failures,
            "nodes": [{**n.as_dict(), "alive": n.node_id in live} for n in sorted(nodes, key=lambda n: n.node_id)],
            # What this node's next routing decision will see: each live edge's viewers as of its
            # last heartbeat read here, plus those sent to it since.
            "routing": {
                n.node_id: self.chooser.load(n)
                for n in alive(self.fresh_nodes() or [], now, dead_after)
                if n.role == "edge"
            },
            # What this node's admission sees: each stream's viewers across the cluster.
            "stream_viewers": {name: self.cluster_viewers(name, fresh, now) for name in sorted(self.registry.streams)}
            if (fresh := self.fresh_nodes()) is not None and self.role != "all"
            else {},
            "pulls_out": {name: u.ingest_stats() for name, u in self.upstreams.items()},
            "pulls_in": [
                {"stream": p.stream, "node": p.node, "session": p.id[:8]} for p in self.registry.pulls.values()
            ],
        }

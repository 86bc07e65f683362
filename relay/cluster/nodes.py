"""Who is in the cluster and where a viewer should go (pure: no I/O, time passed in).

Every node writes a ``NodeLoad`` to the directory once per heartbeat; the directory (Redis)
expires an entry that is not refreshed, and readers also judge liveness themselves from the
heartbeat's time, so a reader never trusts an entry that is older than ``dead_after_s`` even if
the store kept it. Routing picks the least-loaded live edge; a burst of joins arriving between
two heartbeats would all see the same (stale) counts and land on one edge, so the chooser counts
the viewers it sent to each edge since that edge's last heartbeat as already there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

Role = Literal["all", "origin", "edge", "relay"]
ROLES: tuple[Role, ...] = ("all", "origin", "edge", "relay")
# Nodes that pull their streams rather than ingest them: an edge serves viewers; a relay (an edge
# that edges pull from: a relay level) serves edges, and viewers only when one is sent to it.
PULLING: tuple[Role, ...] = ("edge", "relay")


class BadNodeRecord(ValueError):
    """A directory entry that is not a node's load (another program's key, a garbled value)."""


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """One node as its last heartbeat described it."""

    node_id: str
    role: Role
    url: str  # where viewers and other nodes reach it (its advertised HTTP base URL)
    at: float  # wall-clock time of the heartbeat (seconds)
    viewers: int = 0
    cpu: float = 0.0  # fraction of one core its process used since the previous heartbeat
    bytes_per_s: float = 0.0  # media it sent to viewers
    streams: tuple[str, ...] = ()  # origin: streams it ingests; edge: streams it pulls
    stream_viewers: tuple[tuple[str, int], ...] = ()  # (stream, viewers) for each stream it serves
    level: int = 0  # a relay's level (1: pulls from the origin; n: from level n-1); 0 for the other roles

    def to_json(self) -> str:
        return json.dumps(
            {
                "node_id": self.node_id,
                "role": self.role,
                "url": self.url,
                "at": self.at,
                "viewers": self.viewers,
                "cpu": round(self.cpu, 4),
                "bytes_per_s": round(self.bytes_per_s, 1),
                "streams": list(self.streams),
                "stream_viewers": dict(self.stream_viewers),
                "level": self.level,
            },
            separators=(",", ":"),
        )

    @staticmethod
    def from_json(text: str | bytes) -> NodeLoad:
        try:
            data = json.loads(text)
            role = data["role"]
            if role not in ROLES or not isinstance(data["node_id"], str) or not isinstance(data["url"], str):
                raise BadNodeRecord(f"not a node record: {str(text)[:80]!r}")
            streams = data.get("streams", [])
            if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
                raise BadNodeRecord("streams must be a list of names")
            per_stream = data.get("stream_viewers", {})
            if not isinstance(per_stream, dict) or not all(isinstance(k, str) for k in per_stream):
                raise BadNodeRecord("stream_viewers must map stream names to counts")
            level = int(data.get("level", 1 if role == "relay" else 0))  # a record from before levels
            if role == "relay" and level < 1:
                raise BadNodeRecord(f"a relay's level is 1 or more, got {level}")
            return NodeLoad(
                node_id=data["node_id"],
                role=role,
                url=data["url"],
                at=float(data["at"]),
                viewers=int(data.get("viewers", 0)),
                cpu=float(data.get("cpu", 0.0)),
                bytes_per_s=float(data.get("bytes_per_s", 0.0)),
                streams=tuple(streams),
                stream_viewers=tuple(sorted((k, int(v)) for k, v in per_stream.items())),
                level=level if role == "relay" else 0,
            )
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, BadNodeRecord):
                raise
            raise BadNodeRecord(f"not a node record: {exc}") from None

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.to_json())
        return result


def is_alive(node: NodeLoad, now: float, dead_after_s: float) -> bool:
    """A node whose last heartbeat is older than ``dead_after_s`` is dead (a clock that runs a
    little ahead on the writer's side is tolerated: a heartbeat from the future counts as now)."""
    return now - node.at <= dead_after_s


def alive(nodes: list[NodeLoad], now: float, dead_after_s: float) -> list[NodeLoad]:
    return [n for n in nodes if is_alive(n, now, dead_after_s)]


def pick_relay(
    stream: str, me: str, nodes: list[NodeLoad], now: float, dead_after_s: float, *, below: int | None = None
) -> NodeLoad | None:
    """The relay a node pulls ``stream`` from (None: no live relay fits, so it pulls from the origin).

    An edge (``below`` None) pulls from the deepest relay level that has a live relay; a relay at
    level n (``below`` = n) from the deepest live level under n. Levels strictly fall on the way
    to the origin, so pulls never form a loop, and a level that has lost all its relays is skipped
    (its pullers go one level up) rather than cutting its subtree off. Within the chosen level,
    rendezvous hashing on (stream, puller, relay): every puller ranks the relays its own way, so
    one stream's pullers spread evenly over them, each keeps its relay while that relay lives (a
    stale load in the directory cannot make them all jump together), and when one dies only its
    pullers move."""
    relays = [
        n
        for n in alive(nodes, now, dead_after_s)
        if n.role == "relay" and n.node_id != me and (below is None or n.level < below)
    ]
    if not relays:
        return None
    deepest = max(n.level for n in relays)

    def rank(node: NodeLoad) -> bytes:
        return hashlib.blake2b(f"{stream}\0{me}\0{node.node_id}".encode(), digest_size=8).digest()

    return max((n for n in relays if n.level == deepest), key=rank)


def viewers_elsewhere(nodes: list[NodeLoad], me: str, stream: str, now: float, dead_after_s: float) -> int:
    """Viewers of ``stream`` on the other live nodes, as their last heartbeats counted them (a
    cluster-wide limit is then exact up to the joins of one heartbeat interval)."""
    return sum(
        count
        for n in alive(nodes, now, dead_after_s)
        if n.node_id != me
        for name, count in n.stream_viewers
        if name == stream
    )


class EdgeChooser:
    """Picks the least-loaded live edge, counting the viewers it sent since each edge's heartbeat.

    Load is compared as (viewers + sent since heartbeat, cpu, node id): viewers first, since a
    viewer costs an edge about the same whatever it watches; the id breaks ties so that every
    node choosing at once agrees.
    """

    def __init__(self, dead_after_s: float) -> None:
        self.dead_after_s = dead_after_s
        self._sent: dict[str, list[float]] = {}  # node id -> when each redirect went there

    def load(self, node: NodeLoad) -> int:
        """Viewers the edge has, or will have once the viewers sent since its heartbeat arrive."""
        return node.viewers + sum(1 for t in self._sent.get(node.node_id, ()) if t >= node.at)

    def choose(self, nodes: list[NodeLoad], now: float, *, exclude: Collection[str] = ()) -> NodeLoad | None:
        edges = [n for n in alive(nodes, now, self.dead_after_s) if n.role == "edge" and n.node_id not in exclude]
        self._forget(edges)
        if not edges:
            return None
        return min(edges, key=lambda n: (self.load(n), n.cpu, n.node_id))

    def sent(self, node: NodeLoad, now: float) -> None:
        """A viewer was sent to ``node`` at ``now``."""
        self._sent.setdefault(node.node_id, []).append(now)

    def _forget(self, edges: list[NodeLoad]) -> None:
        """Drop what heartbeats have since accounted for, and nodes that are gone."""
        beats = {n.node_id: n.at for n in edges}
        for node_id in list(self._sent):
            at = beats.get(node_id)
            if at is None:
                del self._sent[node_id]
            else:
                self._sent[node_id] = [t for t in self._sent[node_id] if t >= at]


Serve = Literal["serve"]


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the viewer to ``node`` (a 307 to its URL)."""

    node: NodeLoad


def route_viewer(
    chooser: EdgeChooser,
    me: NodeLoad,
    nodes: list[NodeLoad],
    now: float,
    *,
    redirected: bool,
    avoid: Collection[str] = (),
    margin: int = 2,
) -> Redirect | Serve:
    """Where a WHEP POST that reached ``me`` should be served.

    An origin sends every viewer to the least-loaded live edge (and serves it itself only when
    there is none). An edge serves the viewer unless another live edge has at least ``margin``
    fewer viewers (a margin, so that two edges never bounce viewers between them); a request that
    was already redirected once is always served where it lands (no redirect loops on stale
    loads). ``avoid``: nodes the viewer just lost (its player says so when it reconnects), which
    are never chosen even while their last heartbeat still looks alive. ``all`` serves everyone.
    """
    if me.role == "all" or redirected:
        return "serve"
    exclude = {me.node_id, *avoid}
    if me.role == "origin":
        target = chooser.choose(nodes, now, exclude=exclude)
        return "serve" if target is None else Redirect(target)
    target = chooser.choose(nodes, now, exclude=exclude)
    if target is not None and chooser.load(target) + margin <= me.viewers:
        return Redirect(target)
    return "serve"

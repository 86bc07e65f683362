"""The cluster's pure decisions: node liveness, the least-loaded edge, redirects, pull grace,
an edge's mirror of the origin's cards, and RTP timestamps back to the origin's pts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cards.board import CardBoard
from relay.cards.card import parse_card
from relay.cluster.linger import PullLinger
from relay.cluster.nodes import (
    BadNodeRecord,
    EdgeChooser,
    NodeLoad,
    Redirect,
    alive,
    is_alive,
    pick_relay,
    route_viewer,
    viewers_elsewhere,
)
from relay.sessions.upstream import Unwrap

DEAD_AFTER = 5.0


def node(
    node_id: str, role: str = "edge", *, at: float = 100.0, viewers: int = 0, cpu: float = 0.0, level: int = 0
) -> NodeLoad:
    level = level or (1 if role == "relay" else 0)
    return NodeLoad(node_id, role, f"http://{node_id}:8080", at, viewers=viewers, cpu=cpu, level=level)  # type: ignore[arg-type]


# ---- node records -------------------------------------------------------------------------------
@given(
    st.text(min_size=1, max_size=20),
    st.sampled_from(["all", "origin", "edge"]),
    st.floats(0, 2e9),
    st.integers(0, 10**6),
    st.floats(0, 64),
    st.lists(st.text(max_size=10), max_size=4),
    st.dictionaries(st.text(max_size=10), st.integers(1, 10**6), max_size=4),
)
def test_a_node_record_survives_the_directory_round_trip(
    node_id: str, role: str, at: float, viewers: int, cpu: float, streams: list[str], per_stream: dict[str, int]
) -> None:
    load = NodeLoad(
        node_id, role, "http://h:1", at, viewers=viewers, cpu=round(cpu, 4), streams=tuple(streams),  # type: ignore[arg-type]
        stream_viewers=tuple(sorted(per_stream.items())),
    )  # fmt: skip
    again = NodeLoad.from_json(load.to_json())
    assert again == load


@given(st.integers(1, 4))
def test_a_relays_level_survives_the_round_trip_and_an_old_record_is_level_one(level: int) -> None:
    load = node("r", "relay", level=level)
    assert NodeLoad.from_json(load.to_json()) == load
    old = '{"node_id": "r", "role": "relay", "url": "http://r:8080", "at": 100.0}'
    assert NodeLoad.from_json(old) == node("r", "relay", level=1)
    with pytest.raises(BadNodeRecord):
        NodeLoad.from_json('{"node_id": "r", "role": "relay", "url": "u", "at": 0, "level": 0}')


@pytest.mark.parametrize(
    "text", ["", "null", "[]", '{"role": "edge"}', '{"node_id": 1, "role": "edge", "url": "u", "at": 0}',
             '{"node_id": "a", "role": "boss", "url": "u", "at": 0}', '{"node_id": "a", "role": "edge", "url": "u"}',
             '{"node_id": "a", "role": "edge", "url": "u", "at": "x"}', b"\xff\xfe"],
)  # fmt: skip
def test_what_is_not_a_node_record_is_refused_with_one_error_type(text: str | bytes) -> None:
    with pytest.raises(BadNodeRecord):
        NodeLoad.from_json(text)


@given(st.floats(0, 1e6), st.floats(-100, 100))
def test_a_node_is_dead_exactly_when_its_heartbeat_is_older_than_the_limit(at: float, age: float) -> None:
    assert is_alive(node("a", at=at), at + age, DEAD_AFTER) == (age <= DEAD_AFTER)


# ---- the least-loaded edge ----------------------------------------------------------------------
loads = st.lists(
    st.tuples(st.integers(0, 50), st.floats(0, 2), st.floats(0, 10), st.sampled_from(["edge", "origin"])),
    min_size=0,
    max_size=8,
)


@given(loads)
def test_the_chosen_edge_is_live_and_has_no_more_viewers_than_any_other_live_edge(
    spec: list[tuple[int, float, float, str]],
) -> None:
    now = 110.0
    nodes = [node(f"n{i}", role, at=now - age, viewers=v, cpu=cpu) for i, (v, cpu, age, role) in enumerate(spec)]
    chooser = EdgeChooser(DEAD_AFTER)
    chosen = chooser.choose(nodes, now)
    live_edges = [n for n in alive(nodes, now, DEAD_AFTER) if n.role == "edge"]
    if not live_edges:
        assert chosen is None
        return
    assert chosen is not None and chosen in live_edges
    assert all(chosen.viewers <= n.viewers for n in live_edges)


def test_a_burst_of_joins_between_heartbeats_is_spread_over_the_edges() -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    nodes = [node("a", viewers=10), node("b", viewers=0), node("c", viewers=3)]
    sent: dict[str, int] = {}
    for _ in range(20):
        target = chooser.choose(nodes, 101.0)
        assert target is not None
        chooser.sent(target, 101.0)
        sent[target.node_id] = sent.get(target.node_id, 0) + 1
    # Counted as if there: 10 + 0 + 3 + 20 = 33 viewers end up 11 each.
    assert {n.node_id: n.viewers + sent.get(n.node_id, 0) for n in nodes} == {"a": 11, "b": 11, "c": 11}


def test_a_heartbeat_after_the_redirects_replaces_the_guess() -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    b = node("b", viewers=0, at=100.0)
    for _ in range(5):
        chooser.sent(b, 100.5)
    assert chooser.load(b) == 5
    assert chooser.load(node("b", viewers=5, at=101.0)) == 5  # the heartbeat now counts them itself


def test_an_origin_redirects_every_viewer_and_serves_only_when_no_edge_lives() -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    origin = node("o", "origin", viewers=0)
    edges = [node("a", viewers=4), node("b", viewers=1)]
    decision = route_viewer(chooser, origin, [origin, *edges], 101.0, redirected=False)
    assert isinstance(decision, Redirect) and decision.node.node_id == "b"
    dead = [node("a", at=10.0), node("b", at=20.0)]
    assert route_viewer(chooser, origin, [origin, *dead], 101.0, redirected=False) == "serve"


def test_a_redirected_viewer_is_served_where_it_lands() -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    me = node("a", viewers=100)
    assert route_viewer(chooser, me, [me, node("b", viewers=0)], 101.0, redirected=True) == "serve"


@given(st.integers(0, 30), st.integers(0, 30))
def test_an_edge_hands_a_viewer_on_only_to_an_edge_with_clearly_fewer_viewers(mine: int, theirs: int) -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    me = node("a", viewers=mine)
    decision = route_viewer(chooser, me, [me, node("b", viewers=theirs)], 101.0, redirected=False)
    assert (decision != "serve") == (theirs + 2 <= mine)


def test_the_all_in_one_server_serves_everyone() -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    me = node("x", "all", viewers=1000)
    assert route_viewer(chooser, me, [me, node("b")], 101.0, redirected=False) == "serve"


# ---- pull grace ---------------------------------------------------------------------------------
@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(0.01, 5), st.integers(0, 3)), min_size=1, max_size=40), st.floats(0, 10))
def test_a_pull_is_dropped_exactly_once_after_grace_seconds_without_a_viewer(
    steps: list[tuple[float, int]], grace: float
) -> None:
    linger = PullLinger(grace)
    now = 0.0
    linger.started("s", now)
    idle_since: float | None = None
    for dt, viewers in steps:
        now += dt
        dropped = linger.observe({"s": viewers}, now)
        if viewers:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        expected = idle_since is not None and now - idle_since >= grace
        assert dropped == (["s"] if expected else [])
        if dropped:
            assert linger.pulled() == set()
            return
    assert linger.pulled() == {"s"}


def test_a_viewer_arriving_within_the_grace_keeps_the_pull() -> None:
    linger = PullLinger(10.0)
    linger.started("s", 0.0)
    assert linger.observe({"s": 0}, 1.0) == []
    linger.started("s", 9.0)  # a viewer came back (its join restarts the pull's clock)
    assert linger.observe({"s": 0}, 12.0) == []
    assert linger.observe({"s": 0}, 22.0) == ["s"]


# ---- the edge's mirror of the origin's cards ----------------------------------------------------
def _card(i: int) -> object:
    return parse_card(
        {"id": f"c{i}", "title": f"Card {i}", "price": "1.00", "currency": "EUR",
         "image_url": "/i.jpg", "buy_url": "/buy"}
    )  # fmt: skip


actions = st.lists(st.tuples(st.sampled_from(["upsert", "show", "hide", "delete"]), st.integers(0, 4)), max_size=40)


@given(actions, st.integers(0, 40))
def test_an_edge_that_mirrors_the_events_has_the_origins_snapshot(script: list[tuple[str, int]], join_at: int) -> None:
    origin, edge, late = CardBoard(), CardBoard(), CardBoard()
    events = []
    for step, (action, i) in enumerate(script):
        try:
            if action == "upsert":
                event = origin.upsert(_card(i), pts_ms=step * 33, now=float(step))  # type: ignore[arg-type]
            else:
                event = getattr(origin, action)(f"c{i}", pts_ms=step * 33, now=float(step))
        except Exception:
            continue
        events.append(event)
        if len(events) == join_at:  # an edge that connects here: the snapshot, then the rest
            snap = origin.snapshot()
            late.mirror_snapshot(snap.seq, origin.on_screen(), float(step))
    for event in events:
        assert edge.mirror(event)
        assert not edge.mirror(event)  # the same event again changes nothing
    for event in events[join_at:]:
        late.mirror(event)
    assert edge.snapshot() == origin.snapshot()
    assert [e.json for e in edge.history()] == [e.json for e in origin.history()]  # same seq, pts_ms, bytes
    if join_at <= len(events):
        assert late.snapshot() == origin.snapshot()


# ---- RTP timestamps back to pts -----------------------------------------------------------------
@given(st.integers(0, 2**40), st.lists(st.integers(-3000, 90_000), max_size=50))
def test_unwrapped_timestamps_are_the_origins_pts(start: int, steps: list[int]) -> None:
    unwrap = Unwrap()
    pts = start
    assert unwrap(pts & 0xFFFFFFFF) == pts & 0xFFFFFFFF
    base = pts - (pts & 0xFFFFFFFF)
    for step in steps:
        pts += step
        assert unwrap(pts & 0xFFFFFFFF) + base == pts


def test_a_node_the_viewer_just_lost_is_never_chosen_even_while_it_looks_alive() -> None:
    chooser = EdgeChooser(DEAD_AFTER)
    origin = node("o", "origin")
    edges = [node("a", viewers=0), node("b", viewers=9)]
    decision = route_viewer(chooser, origin, [origin, *edges], 101.0, redirected=False, avoid={"a"})
    assert isinstance(decision, Redirect) and decision.node.node_id == "b"
    assert route_viewer(chooser, origin, [origin, *edges], 101.0, redirected=False, avoid={"a", "b"}) == "serve"


# ---- cluster-wide viewer limits -----------------------------------------------------------------
@given(
    st.lists(
        st.tuples(st.sampled_from(["me", "a", "b", "c"]), st.floats(80, 110), st.dictionaries(
            st.sampled_from(["live", "other"]), st.integers(1, 50), max_size=2)),
        max_size=6,
    )
)  # fmt: skip
def test_viewers_elsewhere_sums_the_other_live_nodes_counts_of_that_stream(
    records: list[tuple[str, float, dict[str, int]]],
) -> None:
    now = 106.0
    nodes = [
        NodeLoad(i, "edge", "http://x", at, stream_viewers=tuple(sorted(c.items()))) for i, at, c in records
    ]
    expected = sum(c.get("live", 0) for i, at, c in records if i != "me" and now - at <= DEAD_AFTER)
    assert viewers_elsewhere(nodes, "me", "live", now, DEAD_AFTER) == expected


RELAYS = st.lists(st.sampled_from([f"r{i}" for i in range(8)]), min_size=1, unique=True)


@given(RELAYS, st.text(min_size=1, max_size=12))
def test_an_edge_pulls_from_a_live_relay_and_keeps_it_while_it_lives(relays: list[str], stream: str) -> None:
    nodes = [node(r, "relay") for r in relays] + [node("origin", "origin"), node("e1"), node("e2")]
    chosen = pick_relay(stream, "e1", nodes, 101.0, DEAD_AFTER)
    assert chosen is not None and chosen.role == "relay"
    assert pick_relay(stream, "e1", list(reversed(nodes)), 101.0, DEAD_AFTER) == chosen  # order does not matter
    others = [n for n in nodes if n.node_id != chosen.node_id and n.node_id != relays[-1]]
    if chosen.node_id != relays[-1]:  # another relay dying does not move this edge
        assert pick_relay(stream, "e1", [*others, chosen], 101.0, DEAD_AFTER) == chosen
    dead = [node(chosen.node_id, "relay", at=90.0), *(n for n in nodes if n.node_id != chosen.node_id)]
    moved = pick_relay(stream, "e1", dead, 101.0, DEAD_AFTER)
    assert moved is None if len(relays) == 1 else moved is not None and moved.node_id != chosen.node_id
    assert pick_relay(stream, "r0", [node("r0", "relay")], 101.0, DEAD_AFTER) is None  # never itself


TIERS = st.lists(
    st.tuples(st.sampled_from([f"r{i}" for i in range(10)]), st.integers(1, 4), st.booleans()),
    unique_by=lambda t: t[0],
)


@given(TIERS, st.text(min_size=1, max_size=8), st.integers(0, 4))
def test_pulls_go_to_the_deepest_live_level_below_the_puller_and_never_loop(
    tiers: list[tuple[str, int, bool]], stream: str, puller_level: int
) -> None:
    """An edge (level 0 here, meaning "below every level") pulls from the deepest live level; a
    relay at level n from the deepest live level under n; following the picks from any node
    reaches the origin (None) in at most as many hops as there are levels."""
    nodes = [node(r, "relay", level=lvl, at=100.0 if up else 90.0) for r, lvl, up in tiers]
    live = [(r, lvl) for r, lvl, up in tiers if up]
    below = None if puller_level == 0 else puller_level
    chosen = pick_relay(stream, "me", nodes, 101.0, DEAD_AFTER, below=below)
    fitting = [lvl for r, lvl in live if below is None or lvl < below]
    if not fitting:
        assert chosen is None
    else:
        assert chosen is not None and chosen.level == max(fitting)
    hops, at = 0, chosen
    while at is not None:
        hops += 1
        assert hops <= 4
        nxt = pick_relay(stream, at.node_id, nodes, 101.0, DEAD_AFTER, below=at.level)
        assert nxt is None or nxt.level < at.level
        at = nxt


def test_a_level_that_lost_its_relays_is_skipped_not_cut_off() -> None:
    nodes = [node("a1", "relay", level=1), node("b2", "relay", level=2, at=80.0), node("c3", "relay", level=3)]
    assert pick_relay("s", "c3", nodes, 101.0, DEAD_AFTER, below=3) == nodes[0]  # level 2 is dead: go to 1
    assert pick_relay("s", "e", nodes, 101.0, DEAD_AFTER) == nodes[2]  # an edge: the deepest live level
    assert pick_relay("s", "a1", nodes, 101.0, DEAD_AFTER, below=1) is None  # level 1 pulls from the origin


def test_one_streams_edges_spread_over_the_relays() -> None:
    relays = [node(f"r{i}", "relay") for i in range(4)]
    counts: dict[str, int] = {}
    for e in range(400):
        chosen = pick_relay("live", f"edge-{e}", relays, 101.0, DEAD_AFTER)
        assert chosen is not None
        counts[chosen.node_id] = counts.get(chosen.node_id, 0) + 1
    assert set(counts) == {"r0", "r1", "r2", "r3"} and min(counts.values()) >= 60, counts

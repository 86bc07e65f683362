"""``livecart serve --workers 2``: one origin and one edge process on this machine, each pinned
to its own core, meeting in a real Redis; a viewer that POSTs to the origin is redirected to the
edge and decodes the publisher's pictures; SIGTERM stops both processes cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.peers import WhepViewer, WhipPublisher
from relay.cluster.workers import plan_workers
from tests.e2e.conftest import PUBLISH_KEY, Server, start_server, write_config
from tests.redis_server import RedisServer

TOKEN = "workers-cluster-token-0123456789"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def _exited_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling /proc for the process to end, bounded
    return True


def _cpus(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, RedisServer]]:
    tmp = tmp_path_factory.mktemp("workers")
    try:
        redis = RedisServer(tmp)
    except FileNotFoundError:
        pytest.skip("needs Debian's redis-server (./dev.sh test installs it)")
    redis.start()
    config = write_config(tmp / "livecart.toml", "[hls]\nenabled = false\n")
    server = start_server(
        ["--config", str(config), "--workers", "2", "--cluster", redis.url, "--cluster-token", TOKEN],
        tmp / "server.log",
    )
    try:
        yield server, redis
    finally:
        if server.proc.poll() is None:  # the test failed before its own SIGTERM
            server.proc.kill()  # and its workers follow it (parent-death signal)
            server.proc.wait(10)
        redis.stop()


async def _nodes(
    http: aiohttp.ClientSession, base: str, ready: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        async with http.get(f"{base}/api/cluster") as res:
            nodes: list[dict[str, Any]] = (await res.json())["nodes"]
        if ready(nodes) or time.monotonic() > deadline:
            return nodes
        await asyncio.sleep(0.2)  # polling the directory (heartbeats each 1 s), bounded by the deadline


async def test_two_workers_serve_a_viewer_through_the_edge_and_stop_on_sigterm(
    workers: tuple[Server, RedisServer],
) -> None:
    server, _redis = workers
    children = _children(server.proc.pid)
    assert len(children) == 2, children
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        assert len({_cpus(pid) for pid in children}) == 2, [_cpus(pid) for pid in children]
    async with aiohttp.ClientSession() as http:
        nodes = await _nodes(http, server.base, lambda nodes: len(nodes) >= 2)
        assert sorted(str(n["role"]) for n in nodes) == ["edge", "origin"], nodes
        edge_url = next(str(n["url"]) for n in nodes if n["role"] == "edge")
        publisher = WhipPublisher(server.base, "live", PUBLISH_KEY, width=640, height=360, audio=False)
        await publisher.start(http)
        # The origin names its live streams in its next heartbeat; edges look origins up there.
        nodes = await _nodes(http, server.base, lambda ns: any(n["streams"] == ["live"] for n in ns))
        assert any(n["role"] == "origin" and n["streams"] == ["live"] for n in nodes), nodes
        viewer = WhepViewer(server.base, "live", rendition="480p", audio=False)
        try:
            await viewer.start(http)  # POST to the origin, 307 to the edge
            assert viewer.location is not None and viewer.location.startswith(edge_url), (viewer.location, edge_url)
            await viewer.wait_for(lambda r: len(r.frames) >= 30, 30)
            frames = viewer.record.frames
            assert {(f.width, f.height) for f in frames} == {(640, 360)}
            counters = [f.counter for f in frames]
            assert counters == sorted(counters) and 0 < counters[-1] <= publisher.video.counter

            # SIGTERM drains an edge: it leaves the directory at once (routing stops sending
            # viewers there, well before its entry would expire), tells its viewers to move
            # (`bye`: the watch page reconnects through the origin), and exits cleanly; the
            # supervisor starts it again (a rolling restart).
            edge_pid = children[1]  # started second
            os.kill(edge_pid, signal.SIGTERM)
            await viewer.wait_for(lambda r: r.got("bye"), 10)
            assert _exited_within(edge_pid, 10)
            drained = await _nodes(http, server.base, lambda ns: all(n["url"] != edge_url for n in ns))
            assert all(n["url"] != edge_url for n in drained), drained
        finally:
            await viewer.stop(None, delete=False)  # its edge ended the session (or the test failed)
            await publisher.stop(http)

        def new_edge(ns: list[dict[str, Any]]) -> bool:
            return any(n["role"] == "edge" and n["url"] != edge_url for n in ns)

        nodes = await _nodes(http, server.base, new_edge)
        assert new_edge(nodes)
        assert "worker edge1 exited with code 0: starting it again" in server.log()  # logged before the start
        second_url = next(n["url"] for n in nodes if n["role"] == "edge" and n["url"] != edge_url)
        # A worker that dies is started again too (on a new free port here).
        children = _children(server.proc.pid)
        assert len(children) == 2 and edge_pid not in children, children
        os.kill(children[1], signal.SIGKILL)
        assert _exited_within(children[1], 10)

        def third_edge(ns: list[dict[str, Any]]) -> bool:
            return any(n["role"] == "edge" and n["url"] not in (edge_url, second_url) for n in ns)

        assert third_edge(await _nodes(http, server.base, third_edge))
        assert "worker edge1 exited with code -9: starting it again" in server.log()
        children = _children(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert all(_gone(pid) for pid in children), children
    log = server.log()
    assert "Traceback" not in log, log[-5000:]
    assert "stopping 2 workers" in log


def test_the_plan_gives_each_worker_its_port_core_and_name() -> None:
    specs = plan_workers(3, 8080, "box", "https://live.example:8080/", [0, 1])
    assert [(s.role, s.port, s.cpu, s.node_id) for s in specs] == [
        ("origin", 8080, 0, "box-origin"),
        ("edge", 8081, 1, "box-edge1"),
        ("edge", 8082, 0, "box-edge2"),
    ]
    assert [s.advertise_url for s in specs] == [
        "https://live.example:8080/",
        "https://live.example:8081/",
        "https://live.example:8082/",
    ]
    free = plan_workers(2, 0, None, "https://live.example/", [])
    assert [(s.port, s.cpu, s.node_id, s.advertise_url) for s in free] == [(0, None, None, None)] * 2
    assert "--role" in free[1].flags() and free[1].flags()[free[1].flags().index("--role") + 1] == "edge"


def test_workers_die_with_a_sigkilled_supervisor(workers: tuple[Server, RedisServer], tmp_path: Path) -> None:
    _server, redis = workers
    config = write_config(tmp_path / "livecart.toml", "[hls]\nenabled = false\n")
    server = start_server(
        ["--config", str(config), "--workers", "2", "--cluster", redis.url, "--cluster-token", TOKEN],
        tmp_path / "server.log",
    )
    children = _children(server.proc.pid)
    assert len(children) == 2, children
    server.proc.kill()
    server.proc.wait(10)
    deadline = time.monotonic() + 15
    while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded wait for the kernel's parent-death signal to end them
    assert all(_gone(pid) for pid in children), children

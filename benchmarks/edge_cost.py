"""An edge's CPU per packet it sends to viewers, against an all-in-one process's, at one load.

Run: ``python -m benchmarks.edge_cost [--viewers 150] [--seconds 20] [--rounds 2]``

Two setups, alternating in one sitting; the measured process is pinned to core 0, everything
else (the origin, Redis, this load client) to core 1 (``taskset``, ``sched_setaffinity``):

- ``all-in-one``: ``livecart serve --demo``, which encodes the demo ladder and serves viewers;
- ``edge``: an origin (``--role origin --demo``) on core 1 and an edge (``--role edge``) on core 0
  that pulls it; the viewers watch on the edge (``via=`` so none is redirected).

Each setup is measured with 1 viewer (the base: the encoder in one, the pull in the other) and
with ``--viewers`` (all on ``480p``, cheap viewers that count packets without decoding,
``benchmarks.loadviewer``). An edge encodes nothing, so whole-process figures do not compare;
the marginal ones do: the extra CPU of the extra viewers over the extra packets they are sent
(``packets_sent``, RTP packets handed to the kernel), in microseconds per packet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.loadviewer import LoadViewer
from benchmarks.pull_cost import _cpu_s, _registered, _start, redis_cluster

RENDITION = "480p"
CONFIG = "[limits]\nposts_per_s_per_ip = 10000\nposts_burst = 10000\n"  # the load comes from one address


async def _sent(http: aiohttp.ClientSession, base: str) -> tuple[int, int]:
    async with http.get(f"{base}/api/streams/demo") as res:
        data: dict[str, Any] = await res.json()
    return int(data["packets_sent"]), int(data["viewers"])


async def _measure(http: aiohttp.ClientSession, base: str, pid: int, seconds: float) -> tuple[float, float]:
    """(cores, packets sent per second) of the process over ``seconds``."""
    cpu0, (sent0, _), t0 = _cpu_s(pid), await _sent(http, base), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, (sent1, _), t1 = _cpu_s(pid), await _sent(http, base), time.monotonic()
    return (cpu1 - cpu0) / (t1 - t0), (sent1 - sent0) / (t1 - t0)


async def _viewers(http: aiohttp.ClientSession, base: str, count: int, via: bool) -> list[LoadViewer]:
    viewers = [LoadViewer(base, "demo", rendition=RENDITION) for _ in range(count)]
    for viewer in viewers:
        if via:
            viewer.url += "&via=bench"
    for start in range(0, count, 10):  # ten handshakes at a time
        await asyncio.gather(*(v.join(http, 30) for v in viewers[start : start + 10]))
    return viewers


async def _steps(base: str, pid: int, viewers: int, seconds: float, via: bool) -> tuple[float, float, float, float]:
    async with aiohttp.ClientSession() as http:
        first = await _viewers(http, base, 1, via)
        await asyncio.sleep(3)  # the pull (on an edge) and the viewer settle
        one = await _measure(http, base, pid, seconds)
        rest = await _viewers(http, base, viewers - 1, via)
        await asyncio.sleep(3)
        many = await _measure(http, base, pid, seconds)
        _, counted = await _sent(http, base)
        if counted != viewers:
            raise RuntimeError(f"{counted} viewers on {base}, not {viewers}")
        await asyncio.gather(*(v.leave(http) for v in [*first, *rest]), return_exceptions=True)
    return (*one, *many)


def _all_in_one(tmp: Path, viewers: int, seconds: float) -> tuple[float, float, float, float]:
    tmp.mkdir(parents=True)
    (tmp / "livecart.toml").write_text(CONFIG)
    proc, base = _start(tmp, "all", ["--demo", "--config", str(tmp / "livecart.toml")], "0")
    try:
        return asyncio.run(_steps(base, proc.pid, viewers, seconds, via=False))
    finally:
        proc.terminate()
        proc.wait(15)


def _edge(tmp: Path, viewers: int, seconds: float) -> tuple[float, float, float, float]:
    tmp.mkdir(parents=True)
    (tmp / "livecart.toml").write_text(CONFIG)
    config = ["--config", str(tmp / "livecart.toml")]
    with redis_cluster("1") as (joining, procs):
        cluster = [*config, *joining]
        origin_proc, origin = _start(tmp, "origin", ["--demo", "--role", "origin", *cluster], "1")
        procs.append(origin_proc)
        edge_proc, edge = _start(tmp, "edge", ["--role", "edge", *cluster], "0")
        procs.append(edge_proc)

        async def ready() -> None:
            async with aiohttp.ClientSession() as http:
                await _registered(http, origin)

        asyncio.run(ready())
        return asyncio.run(_steps(edge, edge_proc.pid, viewers, seconds, via=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    tmp = Path(tempfile.mkdtemp(prefix="edge-cost-"))
    print(f"{args.viewers} viewers of {RENDITION}, {args.seconds:.0f} s per step, measured process on core 0")
    print("| round | setup | cores, 1 viewer | cores, N viewers | packets/s sent, N | marginal us/packet |")
    print("|---|---|---|---|---|---|")
    marginal: dict[str, list[float]] = {"all-in-one": [], "edge": []}
    for round_ in range(1, args.rounds + 1):
        for name, run in (("all-in-one", _all_in_one), ("edge", _edge)):
            cpu1, pps1, cpun, ppsn = run(tmp / f"{name}{round_}", args.viewers, args.seconds)
            per_packet = 1e6 * (cpun - cpu1) / (ppsn - pps1)
            marginal[name].append(per_packet)
            print(f"| {round_} | {name} | {cpu1:.3f} | {cpun:.3f} | {ppsn:,.0f} | {per_packet:.2f} |", flush=True)
    a, e = (sum(v) / len(v) for v in (marginal["all-in-one"], marginal["edge"]))
    print(f"\nmean marginal: all-in-one {a:.2f} us/packet, edge {e:.2f} us/packet: edge/all-in-one {e / a:.3f}")


if __name__ == "__main__":
    main()

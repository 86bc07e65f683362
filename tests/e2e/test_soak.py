"""Soak (issue 7): 1,000 viewer join/leave cycles against a live stream give everything back."""

from __future__ import annotations

from benchmarks.soak import report, soak


async def test_thousand_join_leave_cycles_leave_nothing_behind() -> None:
    result = await soak(cycles=1000, batch=10)
    print(report(result))
    before, after = result["before"], result["after"]
    assert result["ok"] == 1000
    assert after["rss_bytes"] - before["rss_bytes"] < 30 * 2**20
    for key in ("open_fds", "asyncio_tasks"):
        assert abs(after[key] - before[key]) <= 5, (key, before[key], after[key])
    assert after["udp_sockets"] == before["udp_sockets"] and after["peer_connections"] == before["peer_connections"]
    assert result["max_gap_s"] < 1.0  # the steady viewers never stopped decoding
    assert result["exit_code"] == 0

"""aiortc's unretained connect task, failing after its peer connection closed, is one log line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ingest.peer import is_abandoned_connect, quiet_abandoned_connects


class RTCPeerConnection:  # stands for aiortc's class only by name: the handler matches the qualname
    async def __connect(self) -> None:
        raise RuntimeError("RTCIceTransport is closed")

    def start(self) -> asyncio.Future[None]:
        return asyncio.ensure_future(self.__connect())


async def _unretrieved(make: object) -> list[dict[str, object]]:
    seen: list[dict[str, object]] = []
    assert callable(make)
    task = make()
    await asyncio.wait([task])
    seen.append({"message": "Task exception was never retrieved", "exception": task.exception(), "future": task})
    return seen


async def _other() -> None:
    raise RuntimeError("a real bug")


async def test_only_aiortcs_connect_task_is_quieted(caplog: pytest.LogCaptureFixture) -> None:
    (connect,) = await _unretrieved(lambda: RTCPeerConnection().start())
    (other,) = await _unretrieved(lambda: asyncio.ensure_future(_other()))
    assert is_abandoned_connect(connect)
    assert not is_abandoned_connect(other)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    try:
        quiet_abandoned_connects(loop)
        with caplog.at_level(logging.INFO):
            loop.call_exception_handler(connect)
            loop.call_exception_handler(other)
    finally:
        loop.set_exception_handler(previous)
    quiet = [r for r in caplog.records if "closed while connecting" in r.getMessage()]
    assert len(quiet) == 1 and quiet[0].exc_info is None
    assert any("a real bug" in str(r.exc_info) for r in caplog.records if r.exc_info)  # still a traceback

"""Slow clients (issue 7): headers and bodies have deadlines; a body in many pieces is read whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Server, start_server, stop_server, write_config
from tests.e2e.helpers import viewer_offer


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("slow")
    config = write_config(tmp / "livecart.toml")
    srv = start_server(["--config", str(config), "--header-timeout", "1", "--body-timeout", "1"], tmp / "server.log")
    yield srv
    assert stop_server(srv) == 0
    assert "Traceback" not in srv.log()


@pytest.fixture
async def connection(slow_server: Server) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    url = urlsplit(slow_server.base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    yield reader, writer
    writer.close()


async def test_a_client_that_never_finishes_its_headers_is_cut_off(
    slow_server: Server, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = connection
    writer.write(b"POST /whep/live HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n")  # ...and stops
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, nothing answered
    assert "no complete request headers within 1 s" in slow_server.log()


async def test_a_body_that_stops_coming_gets_408_with_a_reason(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    reader, writer = connection
    writer.write(
        b"POST /whep/live HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n"
        b"Connection: close\r\nContent-Length: 2000\r\n\r\nv=0\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # answered; the socket may linger
    assert head.startswith(b"HTTP/1.1 408 ")
    length = int(next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")).split(b":")[1])
    assert b"request body not received within 1 s" in await reader.readexactly(length)


async def test_an_offer_arriving_in_many_small_pieces_is_read_whole(
    slow_server: Server, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    reader, writer = connection
    body = (await viewer_offer()).encode()
    writer.write(
        b"POST /whep/live HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    for start in range(0, len(body), 200):  # a slow link: 200 bytes at a time, well within the deadline
        writer.write(body[start : start + 200])
        await writer.drain()
        await asyncio.sleep(0.02)
    response = await asyncio.wait_for(reader.read(), 10)
    assert response.startswith(b"HTTP/1.1 201 "), response[:300]
    location = next(line for line in response.split(b"\r\n") if line.lower().startswith(b"location:"))
    url = urlsplit(slow_server.base)
    r2, w2 = await asyncio.open_connection(url.hostname, url.port)
    path = location.split(b":", 1)[1].strip()
    w2.write(b"DELETE " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await w2.drain()
    assert (await asyncio.wait_for(r2.read(), 10)).startswith(b"HTTP/1.1 200 ")
    w2.close()

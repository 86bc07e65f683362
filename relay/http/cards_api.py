"""HTTP handlers for product cards: the host API and the Server-Sent Events fallback.

Thin: read and check the request, call the stream's ``CardFeed``, shape the response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import time
from typing import Literal

from aiohttp import web

from relay.cards.board import CardEvent
from relay.cards.card import MAX_MESSAGE_BYTES, card_to_dict, parse_card_body
from relay.cards.orders import MAX_ORDER_BYTES, parse_order
from relay.errors import Forbidden, Unauthorized
from relay.http.input import bearer_token, read_limited, viewer_token
from relay.messages import Clock, OrderNotice, encode
from relay.sessions.stream import Stream

SSE_KEEPALIVE_S = 15.0


def check_host(request: web.Request, stream: Stream) -> None:
    """The host API takes the stream's publish key or its separate host key."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <publish or host key>'")
    keys = [stream.config.publish_key, *([stream.config.host_key] if stream.config.host_key else [])]
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
        raise Forbidden("wrong bearer token for this stream's cards")


def _event_response(event: CardEvent, status: int = 200) -> web.Response:
    return web.Response(status=status, text=event.to_json(), content_type="application/json")


async def upsert_card(request: web.Request, stream: Stream) -> web.Response:
    check_host(request, stream)
    card = parse_card_body(await read_limited(request, MAX_MESSAGE_BYTES))
    event = await stream.cards.upsert(card)
    return _event_response(event)


async def post_order(request: web.Request, stream: Stream) -> web.Response:
    """The shop reports an order: the card's update to everyone, a sampled notice to viewers."""
    check_host(request, stream)
    order = parse_order(await read_limited(request, MAX_ORDER_BYTES))
    event = await stream.cards.order(order)
    card = event.card
    notice = OrderNotice(card.id, card.title, order.buyer or "Someone", order.quantity, card.stock)
    stream.talk.order(notice, time.monotonic())
    stream.analytics.ordered(order.quantity, time.monotonic())
    return _event_response(event)


async def get_stats(request: web.Request, stream: Stream) -> web.Response:
    """The shop's analytics of the stream's current session, and the last sessions' (host key)."""
    check_host(request, stream)
    return web.json_response({"stream": stream.name, **stream.sessions.report(time.monotonic())})


async def card_action(
    request: web.Request, stream: Stream, action: Literal["show", "hide", "delete"]
) -> web.Response:
    check_host(request, stream)
    event = await stream.cards.act(action, request.match_info["card"])
    return _event_response(event)


async def list_cards(request: web.Request, stream: Stream) -> web.Response:
    board = stream.cards.board
    return web.json_response(
        {
            "stream": stream.name,
            "seq": board.last_seq,
            "catalogue": [card_to_dict(c) for c in board.catalogue()],
            "on_screen": [card_to_dict(c) for c in board.on_screen()],
        }
    )


def _data(data: str) -> bytes:
    """An SSE message without an id (the client's Last-Event-ID stays the last card's)."""
    return f"data: {data}\n\n".encode()


def _sse(event_id: int, data: str, name: str | None = None) -> bytes:
    head = f"id: {event_id}\n" + (f"event: {name}\n" if name else "")
    return (head + f"data: {data}\n\n").encode()


async def events(request: web.Request, stream: Stream) -> web.StreamResponse:
    """SSE: a snapshot (or the missed events after ``Last-Event-ID``), then live events.

    With ``?viewer=<WHEP session id>`` (a player whose data channel does not open) it also carries
    that viewer's ``clock`` messages, as its data channel would: in the snapshot, once after the
    snapshot or missed events, and after every rung switch. They have no ``id:`` (the id is the
    card sequence number a reconnect resumes from); the stream ends with the viewer session.
    """
    stream.check_viewer_token(viewer_token(request), time.time())
    feed = stream.cards
    viewer_id = request.query.get("viewer")
    queue = feed.subscribe()  # before reading history, so nothing falls between the two
    try:
        # Before the response starts, so an unknown viewer is a plain 404.
        clock = stream.watch_clock(viewer_id, queue) if viewer_id is not None else None
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        last = request.headers.get("Last-Event-ID", request.query.get("last_event_id", ""))
        missed = feed.board.events_since(int(last)) if last.isdigit() else None
        sent = int(last) if missed is not None else feed.board.last_seq
        if missed is None:
            snapshot = dataclasses.replace(feed.board.snapshot(), clock=clock)
            await response.write(_sse(feed.board.last_seq, encode(snapshot), "snapshot"))
        else:
            for event in missed:
                await response.write(_sse(event.seq, event.to_json()))
        if clock is not None:
            await response.write(_data(encode(clock)))
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:  # cut off for falling behind (or its viewer left): it resumes by id
                break
            if isinstance(item, Clock):
                await response.write(_data(encode(item)))
                continue
            if item.seq <= sent:
                continue
            await response.write(_sse(item.seq, item.to_json()))
            sent = item.seq
        return response
    except ConnectionResetError:  # the client went away: normal for SSE, it reconnects by id
        return response
    finally:
        feed.unsubscribe(queue)
        if viewer_id is not None:
            stream.unwatch_clock(viewer_id, queue)


def cards_routes(app: web.Application, stream_of: object) -> None:
    """Register the card routes; ``stream_of(request)`` resolves the URL's stream (404 if unknown)."""
    assert callable(stream_of)
    base = r"/api/streams/{stream:[A-Za-z0-9_-]{1,64}}"
    card = r"{card:[A-Za-z0-9_.:-]{1,64}}"

    async def post_card(request: web.Request) -> web.StreamResponse:
        return await upsert_card(request, stream_of(request))

    async def get_cards(request: web.Request) -> web.StreamResponse:
        return await list_cards(request, stream_of(request))

    async def show(request: web.Request) -> web.StreamResponse:
        return await card_action(request, stream_of(request), "show")

    async def hide(request: web.Request) -> web.StreamResponse:
        return await card_action(request, stream_of(request), "hide")

    async def delete(request: web.Request) -> web.StreamResponse:
        return await card_action(request, stream_of(request), "delete")

    async def sse(request: web.Request) -> web.StreamResponse:
        return await events(request, stream_of(request))

    async def order(request: web.Request) -> web.StreamResponse:
        return await post_order(request, stream_of(request))

    async def stats(request: web.Request) -> web.StreamResponse:
        return await get_stats(request, stream_of(request))

    app.router.add_post(f"{base}/cards", post_card)
    app.router.add_get(f"{base}/cards", get_cards)
    app.router.add_post(f"{base}/cards/{card}/show", show)
    app.router.add_post(f"{base}/cards/{card}/hide", hide)
    app.router.add_delete(f"{base}/cards/{card}", delete)
    app.router.add_get(f"{base}/events", sse)
    app.router.add_post(f"{base}/orders", order)
    app.router.add_get(f"{base}/stats", stats)

"""The viewer wire protocol: every message on a viewer's ``cards`` data channel and SSE stream,
and every message a viewer or a browser publisher may send us. Pure: no I/O.

Each message is a JSON object whose ``type`` names it. The server's messages are frozen
dataclasses here, serialised once by ``encode`` (compact JSON) and sent as they are to every
viewer that needs them; what peers send is parsed by ``parse_viewer_message`` and
``parse_card_action``, which never raise anything but ``BadMessage``. ``player_demo/watch.js``
reads the same messages, and the README's protocol section is generated from this module
(``python -m relay.messages``) and checked against it by the test suite.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

CardAction = Literal["show", "hide", "update", "delete"]
StreamPhase = Literal["offline", "connecting", "live"]


class BadMessage(ValueError):
    """What a peer sent is not a message of this protocol; ``reason`` says why, in one line, and
    ``status`` is what an HTTP request as malformed would get (400 not JSON, 422 not a message)."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamState:
    """Sent on open and whenever the stream's state changes: `state` is `offline`, `connecting` (a
    publisher holds the stream but no video has arrived yet) or `live`; `live` is `state == "live"`."""

    type: ClassVar[str] = "stream"
    stream: str
    live: bool
    state: StreamPhase = "offline"


@dataclass(frozen=True, slots=True)
class Clock:
    """How this viewer's RTP timestamps map to media time (the ``pts_ms`` of cards), exactly: a video
    frame with RTP timestamp ``r`` has media time (``media_ts`` + d) / ``rtp_clock_hz`` seconds, d being
    ``r`` - ``rtp`` as a signed 32-bit difference. Sent once the first frame has gone out and again
    after every rung switch (which may retime the stream); a frame whose ``r`` is before a newer
    pair's ``rtp`` keeps the older pair. Also in ``snapshot``, and on the SSE stream with ``?viewer=``."""

    type: ClassVar[str] = "clock"
    rtp: int  # the RTP timestamp of this mapping's first frame, as the viewer received it
    media_ts: int  # that frame's media time in ticks of rtp_clock_hz since the stream started
    rtp_clock_hz: int = 90_000


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The cards on screen now and the last sequence number (on open, and to late joiners over
    SSE); ``clock`` is set once this viewer has been sent video."""

    type: ClassVar[str] = "snapshot"
    seq: int
    cards: tuple[Mapping[str, object], ...]
    clock: Clock | None = None


@dataclass(frozen=True, slots=True)
class CardMessage:
    """A card was shown, hidden, updated or deleted, at media time ``pts_ms``; ``seq`` increases by
    one per event of the stream, so a gap means a missed event (SSE resumes by id)."""

    type: ClassVar[str] = "card"
    seq: int
    action: CardAction
    card: Mapping[str, object]
    pts_ms: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class RenditionChanged:
    """The rung this viewer receives now (after a switch takes effect), and whether it is on auto."""

    type: ClassVar[str] = "rendition"
    name: str
    width: int
    height: int
    auto: bool


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A request of this peer was refused; ``status`` is the HTTP status the same request gets."""

    type: ClassVar[str] = "error"
    reason: str
    status: int = 400


@dataclass(frozen=True, slots=True)
class Bye:
    """The server ends this session (shutdown, a too slow channel); the player may reconnect."""

    type: ClassVar[str] = "bye"
    reason: str


@dataclass(frozen=True, slots=True)
class CommentMessage:
    """A viewer's (or the host's) comment, as viewers see it: at most ~10 a second reach viewers,
    the host console gets every one; `mine` is true on the echo of a viewer's own comment."""

    type: ClassVar[str] = "comment"
    id: int
    name: str
    role: str
    text: str
    pts_ms: int
    sent_at: float
    mine: bool = False


@dataclass(frozen=True, slots=True)
class CommentBatch:
    """The viewers' display stream, batched: the `comment`s (each as above, `mine` false) shown in
    the last second, in one message rather than one each (every message to every viewer
    costs the server a data-channel send)."""

    type: ClassVar[str] = "comments"
    comments: tuple[CommentMessage, ...]


def encode_batch(comments: list[str]) -> str:
    """A ``CommentBatch`` from comments already encoded (``encode(CommentMessage(...))``)."""
    return '{"type":"comments","comments":[' + ",".join(comments) + "]}"


@dataclass(frozen=True, slots=True)
class Batch:
    """Messages due at the same moment, in one: the conversation's one-second tick sends its
    display (`comments` or a `comment`) and the `likes` totals so, one data-channel send per
    viewer rather than two. Each of `messages` is handled as if it had come alone."""

    type: ClassVar[str] = "batch"
    messages: tuple[CommentMessage | CommentBatch | LikeTotals, ...]


def encode_together(messages: list[str]) -> str:
    """Messages due at the same moment as one: ``{"type":"batch","messages":[...]}`` (or the one
    message itself). The conversation's tick sends its display batch and the like totals so,
    one data-channel send per viewer instead of two; a client handles each inner message as if
    it had come alone."""
    if len(messages) == 1:
        return messages[0]
    return '{"type":"batch","messages":[' + ",".join(messages) + "]}"


def split_together(text: str) -> list[str]:
    """The messages of an ``encode_together`` batch, each serialised as it would have come alone
    (a client's side: the test and benchmark viewers use it)."""
    if not text.startswith('{"type":"batch"'):
        return [text]
    return [json.dumps(m, separators=(",", ":")) for m in json.loads(text)["messages"]]


@dataclass(frozen=True, slots=True)
class CommentRemoved:
    """A moderator deleted comment `id`: players remove it from the screen."""

    type: ClassVar[str] = "comment_removed"
    id: int


@dataclass(frozen=True, slots=True)
class CommentPinned:
    """The host pinned `comment` above the comments (to every viewer, and to each viewer that
    joins while it is pinned), or unpinned it: `comment` null. Deleting a pinned comment unpins it."""

    type: ClassVar[str] = "comment_pinned"
    comment: CommentMessage | None


@dataclass(frozen=True, slots=True)
class LikeTotals:
    """The stream's like total and per-gift counts, once a second (the display's tick) while they change."""

    type: ClassVar[str] = "likes"
    total: int
    gifts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class OrderNotice:
    """Social proof: "Ann just bought Silk scarf", at most one every 2 s to viewers (the host
    console gets every order); the card's own update carries its stock and sold count."""

    type: ClassVar[str] = "order"
    card: str
    title: str
    buyer: str
    quantity: int
    stock: int | None


ServerMessage = (
    StreamState
    | Clock
    | Snapshot
    | CardMessage
    | RenditionChanged
    | ErrorMessage
    | Bye
    | CommentMessage
    | CommentBatch
    | CommentRemoved
    | CommentPinned
    | LikeTotals
    | Batch
    | OrderNotice
)
SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (
    StreamState,
    Snapshot,
    Clock,
    CardMessage,
    RenditionChanged,
    ErrorMessage,
    Bye,
    CommentMessage,
    CommentBatch,
    CommentRemoved,
    CommentPinned,
    LikeTotals,
    Batch,
    OrderNotice,
)


def _plain(message: ServerMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"type": message.type}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if isinstance(value, Clock | CommentMessage):
            value = _plain(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = [_plain(v) if isinstance(v, CommentMessage | CommentBatch | LikeTotals) else v for v in value]
        if value is not None or f.name != "clock":
            out[f.name] = value
    return out


def encode(message: ServerMessage) -> str:
    """The message as compact JSON text, ready for a data channel or an SSE ``data:`` line."""
    return json.dumps(_plain(message), separators=(",", ":"))


# ---- what peers send ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RenditionRequest:
    """Viewer -> server: ``{"type": "rendition", "name": "480p"}`` picks a rung, ``"auto"`` the ABR."""

    type: ClassVar[str] = "rendition"
    name: str


@dataclass(frozen=True, slots=True)
class PostComment:
    """Viewer -> server: `{"type": "comment", "text": "..."}`; refusals come back as an `error`."""

    type: ClassVar[str] = "comment"
    text: str


@dataclass(frozen=True, slots=True)
class Like:
    """Viewer -> server: `{"type": "like", "count": N}` (taps batched by the player, 1-100) or with
    `"gift": "rose"` for a gift."""

    type: ClassVar[str] = "like"
    count: object
    gift: object = None


@dataclass(frozen=True, slots=True)
class BuyClick:
    """Viewer -> server: `{"type": "click", "card": "sku-42"}`, the viewer clicked Buy on that
    card (the shop's click-through rate, `GET /api/streams/{stream}/stats`)."""

    type: ClassVar[str] = "click"
    card: str


ViewerMessage = RenditionRequest | PostComment | Like | BuyClick
VIEWER_MESSAGES: tuple[type[ViewerMessage], ...] = (RenditionRequest, PostComment, Like, BuyClick)


@dataclass(frozen=True, slots=True)
class UpsertCard:
    """Browser publisher -> server, on its WHIP data channel: ``{"action": "upsert", "card": {...}}``
    adds or changes a card. The reply is the resulting ``card`` event or an ``error``."""

    card: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class CardCommand:
    """Browser publisher -> server: ``{"action": "show" | "hide" | "delete", "id": "..."}``.
    The reply is the resulting ``card`` event or an ``error``."""

    action: Literal["show", "hide", "delete"]
    card_id: str


def _object(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError:
        raise BadMessage("message is not JSON", 400) from None
    if not isinstance(message, dict):
        raise BadMessage("message must be a JSON object")
    return message


def parse_viewer_message(text: str) -> ViewerMessage:
    """A viewer's control message; BadMessage for anything else."""
    message = _object(text)
    kind = message.get("type")
    if kind == RenditionRequest.type:
        name = message.get("name")
        if not isinstance(name, str):
            raise BadMessage("a rendition request needs a name")
        return RenditionRequest(name)
    if kind == PostComment.type:
        body = message.get("text")
        if not isinstance(body, str):
            raise BadMessage("a comment needs a text")
        return PostComment(body)
    if kind == Like.type:
        return Like(message.get("count"), message.get("gift"))
    if kind == BuyClick.type:
        card = message.get("card")
        if not isinstance(card, str) or not 1 <= len(card) <= 64:
            raise BadMessage("a click names its card")
        return BuyClick(card)
    raise BadMessage("unknown message type: send rendition, comment, like or click")


def parse_card_action(text: str) -> UpsertCard | CardCommand:
    """A browser publisher's card action; BadMessage for anything else (the card itself is
    validated by ``relay.cards.card.parse_card``)."""
    message = _object(text)
    action = message.get("action")
    card, card_id = message.get("card"), message.get("id")
    if action == "upsert" and isinstance(card, dict):
        return UpsertCard(card)
    if action in ("show", "hide", "delete") and isinstance(card_id, str):
        return CardCommand(action, card_id)
    raise BadMessage("action must be upsert (with card) or show, hide, delete (with id)")


# ---- between nodes: an edge and its origin, on the pull's data channel --------------------------
MAX_EDGE_COMMENTS = 64  # comments in one edge_talk message (an edge sends more messages when busier)


@dataclass(frozen=True, slots=True)
class EdgeComment:
    """One comment an edge's viewer posted, with who posted it (the edge checked the viewer's
    token) and `ref`, the edge's id for the viewer, which the origin's reply names."""

    ref: str
    sub: str
    name: str
    role: str
    guest: bool
    text: str


@dataclass(frozen=True, slots=True)
class EdgeTalk:
    """Edge -> origin, on a pull's `cards` channel, at most every 100 ms while its viewers talk
    or come and go: their `comments` (each with the poster's `ref`, `sub`, `name`, `role`, `guest`
    and `text`), the `likes` and `gifts` they tapped since the last one, summed, and for the
    shop's analytics the edge's `viewers` now (its edges' too, on a relay), the `joins` since the
    last one and the Buy `clicks` (`[ref, card]`). The origin owns the conversation and the
    analytics: it takes these as its own viewers'."""

    type: ClassVar[str] = "edge_talk"
    comments: tuple[EdgeComment, ...] = ()
    likes: int = 0
    gifts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    viewers: int = 0
    joins: int = 0
    clicks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ToViewers:
    """Origin -> edge: replies for single viewers of that edge, `items` being `[ref, message]` pairs
    (a `comment` echo with `mine`, or the `error` refusing it), passed on as they are."""

    type: ClassVar[str] = "to_viewers"
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Bans:
    """Origin -> edge (and relay -> edge): viewers the host banned (`banned` true) or let back
    (false), by `subs`, so that an edge refuses their joins as the origin does; the whole list on
    a pull's open, in pieces, then each change. Never sent to viewers."""

    type: ClassVar[str] = "bans"
    subs: tuple[str, ...]
    banned: bool = True


BANS_PER_MESSAGE = 500


def encode_bans(subs: list[str], banned: bool = True) -> list[str]:
    """``Bans`` messages for ``subs``, at most BANS_PER_MESSAGE each (none for none)."""
    return [
        json.dumps({"type": Bans.type, "subs": subs[i : i + BANS_PER_MESSAGE], "banned": banned}, separators=(",", ":"))
        for i in range(0, len(subs), BANS_PER_MESSAGE)
    ]


def parse_bans(message: Mapping[str, Any]) -> Bans:
    subs, banned = message.get("subs"), message.get("banned", True)
    if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs) or not isinstance(banned, bool):
        raise BadMessage("bans has subs (a list of strings) and banned (true or false)")
    return Bans(tuple(subs), banned)


def encode_edge_talk(talk: EdgeTalk) -> str:
    return json.dumps(
        {
            "type": EdgeTalk.type,
            "comments": [dataclasses.astuple(c) for c in talk.comments],
            "likes": talk.likes,
            "gifts": dict(talk.gifts),
            "viewers": talk.viewers,
            "joins": talk.joins,
            "clicks": [list(c) for c in talk.clicks],
        },
        separators=(",", ":"),
    )


def encode_to_viewers(items: list[tuple[str, str]]) -> str:
    return json.dumps({"type": ToViewers.type, "items": items}, separators=(",", ":"))


def _count(value: object, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise BadMessage(f"a count is a whole number from 0 to {limit}")
    return value


def parse_edge_talk(text: str) -> EdgeTalk:
    """An edge's ``edge_talk``; BadMessage for anything else."""
    message = _object(text)
    if message.get("type") != EdgeTalk.type:
        raise BadMessage("an edge sends edge_talk")
    raw, gifts = message.get("comments", []), message.get("gifts", {})
    if not isinstance(raw, list) or len(raw) > MAX_EDGE_COMMENTS or not isinstance(gifts, dict):
        raise BadMessage(f"edge_talk has a list of at most {MAX_EDGE_COMMENTS} comments and a gifts object")
    comments = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 6 and isinstance(item[4], bool)
                and all(isinstance(v, str) for i, v in enumerate(item) if i != 4)):  # fmt: skip
            raise BadMessage("an edge comment is [ref, sub, name, role, guest, text]")
        comments.append(EdgeComment(*item))
    clicks = message.get("clicks", [])
    if not isinstance(clicks, list) or len(clicks) > MAX_EDGE_COMMENTS or not all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(v, str) and 0 < len(v) <= 200 for v in c)
        for c in clicks
    ):
        raise BadMessage(f"edge_talk clicks are at most {MAX_EDGE_COMMENTS} [ref, card] pairs")
    return EdgeTalk(
        tuple(comments),
        _count(message.get("likes", 0), 10**9),
        {str(k): _count(v, 10**9) for k, v in gifts.items()},
        _count(message.get("viewers", 0), 10**9),
        _count(message.get("joins", 0), 10**9),
        tuple((ref, card) for ref, card in clicks),
    )


def parse_to_viewers(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The origin's ``to_viewers`` (already JSON-decoded); BadMessage when it is not one."""
    items = message.get("items")
    if not isinstance(items, list) or not all(
        isinstance(i, list) and len(i) == 2 and all(isinstance(v, str) for v in i) for i in items
    ):
        raise BadMessage("to_viewers has items: [[ref, message], ...]")
    return [(ref, text) for ref, text in items]


def _fields(cls: type[Any]) -> str:
    return ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls))


def _doc(cls: type[Any]) -> str:
    """A class docstring as one Markdown table cell."""
    return " ".join((cls.__doc__ or "").split()).replace("``", "`").replace("|", "\\|")


def protocol_markdown() -> str:
    """The README's protocol table, made from the classes above (the test suite compares them)."""
    rows = ["| direction | `type` | fields | meaning |", "|---|---|---|---|"]
    for server_cls in SERVER_MESSAGES:
        rows.append(f"| server -> viewer | `{server_cls.type}` | {_fields(server_cls)} | {_doc(server_cls)} |")
    for viewer_cls in VIEWER_MESSAGES:
        rows.append(f"| viewer -> server | `{viewer_cls.type}` | {_fields(viewer_cls)} | {_doc(viewer_cls)} |")
    for peer_cls, fields in ((UpsertCard, "`action`, `card`"), (CardCommand, "`action`, `id`")):
        rows.append(f"| publisher -> server | (none) | {fields} | {_doc(peer_cls)} |")
    rows.append(f"| edge -> origin | `{EdgeTalk.type}` | {_fields(EdgeTalk)} | {_doc(EdgeTalk)} |")
    rows.append(f"| origin -> edge | `{ToViewers.type}` | {_fields(ToViewers)} | {_doc(ToViewers)} |")
    rows.append(f"| origin -> edge | `{Bans.type}` | {_fields(Bans)} | {_doc(Bans)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(protocol_markdown(), end="")

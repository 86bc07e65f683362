"""The OpenAPI 3.0 document of the shop-facing HTTP API, served at ``/api/openapi.json``.

A shop's backend integrates with LiveCart through these routes (cards, comments, likes,
moderation, stats, recordings, viewer tokens); the document is what its developers and their code
generators read, and what the suite fuzzes the server against (schemathesis: no 5xx, every
response as documented). It is plain data written by hand beside the handlers, not derived from
them: a handler that drifts from it fails that test. WHIP/WHEP are not here: they are SDP
protocols with their own RFC and draft.
"""

from __future__ import annotations

from typing import Any

STREAM = r"^[A-Za-z0-9_-]{1,64}$"
CARD_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
TEXT_ERROR = {"text/plain": {"schema": {"type": "string"}}}
REASONS = {
    "400": "the request is malformed (the body says what is wrong)",
    "401": "no credentials, or a guest on a stream that takes no anonymous comments",
    "403": "wrong key or token, banned or muted",
    "404": "no such stream, card or comment",
    "408": "the request body did not arrive in time",
    "409": "the request does not fit the stream (e.g. a token for an open stream)",
    "413": "the body is over its limit",
    "422": "a field is invalid (the reason names it), or the comment was refused",
    "429": "rate limited; Retry-After says when to try again",
    "503": "cannot be served now (e.g. the comment review is down); Retry-After says when",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": REASONS[str(c)], "content": TEXT_ERROR} for c in codes}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _text_ok(description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": TEXT_ERROR}}


HOST: list[dict[str, list[str]]] = [{"hostKey": []}]
# The host's key, a viewer's token, or nothing at all (a guest, on a stream without viewer_secret).
ANYONE_ON_OPEN: list[dict[str, list[str]]] = [{"hostKey": []}, {"viewerToken": []}, {}]
VIEWER_ON_OPEN: list[dict[str, list[str]]] = [{"viewerToken": []}, {}]  # a protected stream's recordings

SCHEMAS: dict[str, Any] = {
    "Card": {
        "type": "object",
        "description": "A product as viewers see it over the video.",
        "required": ["id", "title", "price", "currency", "image_url", "buy_url"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": CARD_ID},
            "title": {"type": "string", "minLength": 1, "maxLength": 120},
            "price": {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,4})?$", "example": "19.99"},
            "currency": {"type": "string", "description": "ISO 4217", "example": "EUR"},
            "image_url": {"type": "string", "maxLength": 2048},
            "buy_url": {"type": "string", "maxLength": 2048},
            "subtitle": {"type": "string", "maxLength": 200},
            "badge": {"type": "string", "maxLength": 32},
            "stock": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
            "sold": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "description": "counted by orders"},
            "ttl_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 86400},
        },
    },
    "CardEvent": {
        "type": "object",
        "required": ["type", "seq", "action", "card", "pts_ms", "sent_at"],
        "properties": {
            "type": {"type": "string", "enum": ["card"]},
            "seq": {"type": "integer", "description": "one more per event of the stream"},
            "action": {"type": "string", "enum": ["show", "hide", "update", "delete"]},
            "card": _ref("Card"),
            "pts_ms": {"type": "integer", "description": "media time of the frame on air"},
            "sent_at": {"type": "number", "description": "unix seconds"},
        },
    },
    "CardList": {
        "type": "object",
        "required": ["stream", "seq", "catalogue", "on_screen"],
        "properties": {
            "stream": {"type": "string"},
            "seq": {"type": "integer"},
            "catalogue": {"type": "array", "items": _ref("Card")},
            "on_screen": {"type": "array", "items": _ref("Card")},
        },
    },
    "Order": {
        "type": "object",
        "description": "One order the shop's backend reports: the card's stock counts down, viewers see it.",
        "required": ["card_id"],
        "additionalProperties": False,
        "properties": {
            "card_id": {"type": "string", "pattern": CARD_ID},
            "quantity": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
            "buyer": {"type": "string", "minLength": 1, "maxLength": 40, "description": "display name, e.g. Ann"},
        },
    },
    "Stats": {
        "type": "object",
        "description": (
            "The shop's analytics of the stream's current session (from its go-live; a publisher back within "
            "5 minutes continues it) and, in `previous`, the last 10 sessions' as they ended."
        ),
        "required": [
            "stream", "session", "live", "elapsed_s", "viewers", "comments", "likes", "orders", "cards", "timeline",
            "previous",
        ],
        "properties": {
            "stream": {"type": "string"},
            "session": {"type": "integer", "description": "1 for the first go-live; 0 before it"},
            "live": {"type": "boolean"},
            "previous": {
                "type": "array",
                "description": "ended sessions, newest first: each as this object was when it ended",
                "items": {"type": "object"},
            },
            "elapsed_s": {"type": "number"},
            "viewers": {
                "type": "object",
                "required": ["now", "peak", "average", "joins", "watch_time_s"],
                "properties": {
                    "now": {"type": "integer"},
                    "peak": {"type": "integer"},
                    "average": {"type": "number"},
                    "joins": {"type": "integer"},
                    "watch_time_s": {"type": "number"},
                },
            },
            "comments": {"type": "integer"},
            "likes": {"type": "integer"},
            "orders": {"type": "integer"},
            "cards": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "title", "impressions", "clicks", "clickers", "ctr", "on_screen_s"],
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "impressions": {"type": "integer", "description": "viewers watching while it was shown"},
                        "clicks": {"type": "integer", "description": "Buy clicks reported by players"},
                        "clickers": {"type": "integer"},
                        "ctr": {"type": "number", "description": "clickers / impressions"},
                        "on_screen_s": {"type": "number"},
                    },
                },
            },
            "timeline": {
                "type": "array",
                "description": "minute by minute since the start",
                "items": {
                    "type": "object",
                    "required": ["minute", "comments", "likes", "orders", "viewers_peak"],
                    "properties": {
                        "minute": {"type": "integer"},
                        "comments": {"type": "integer"},
                        "likes": {"type": "integer"},
                        "orders": {"type": "integer"},
                        "viewers_peak": {"type": "integer"},
                    },
                },
            },
        },
    },
    "NewComment": {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
    "Comment": {
        "type": "object",
        "required": ["type", "id", "name", "role", "text", "pts_ms", "sent_at", "mine"],
        "properties": {
            "type": {"type": "string", "enum": ["comment"]},
            "id": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["viewer", "moderator", "host"]},
            "text": {"type": "string"},
            "pts_ms": {"type": "integer"},
            "sent_at": {"type": "number"},
            "mine": {"type": "boolean"},
            "sub": {"type": "string", "description": "the author's user id (host listing only)"},
        },
    },
    "LikeTotals": {
        "type": "object",
        "required": ["total", "gifts"],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "gifts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        },
    },
    "CommentList": {
        "type": "object",
        "required": ["stream", "comments", "likes", "accepted", "refused", "display_dropped", "banned", "pinned"],
        "properties": {
            "stream": {"type": "string"},
            "comments": {"type": "array", "items": _ref("Comment")},
            "likes": _ref("LikeTotals"),
            "accepted": {"type": "integer", "minimum": 0},
            "refused": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            "display_dropped": {"type": "integer", "minimum": 0},
            "banned": {"type": "array", "items": {"type": "string"}},
            "pinned": {"type": "integer", "nullable": True, "description": "the pinned comment's id, if one is"},
        },
    },
    "Likes": {
        "type": "object",
        "required": ["count"],
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 100, "description": "taps in this batch"},
            "gift": {"type": "string", "pattern": "^[a-z0-9_-]{1,24}$"},
        },
    },
    "Moderation": {
        "type": "object",
        "required": ["action", "sub"],
        "properties": {
            "action": {"type": "string", "enum": ["ban", "unban", "mute"]},
            "sub": {"type": "string", "minLength": 1},
            "seconds": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 86400, "default": 300},
        },
    },
    "TokenRequest": {
        "type": "object",
        "required": ["sub"],
        "properties": {
            "sub": {"type": "string", "minLength": 1, "maxLength": 128, "description": "the shop's user id"},
            "name": {"type": "string", "minLength": 1, "maxLength": 40, "description": "what others see"},
            "role": {"type": "string", "enum": ["viewer", "moderator", "host"], "default": "viewer"},
            "ttl_s": {"type": "integer", "minimum": 60, "maximum": 604800, "default": 3600},
        },
    },
    "Token": {
        "type": "object",
        "required": ["token", "expires_at", "stream"],
        "properties": {
            "token": {"type": "string", "description": "a JWT (HS256, aud = the stream)"},
            "expires_at": {"type": "integer", "description": "unix seconds"},
            "stream": {"type": "string"},
        },
    },
    "RecordingTrack": {
        "type": "object",
        "required": ["name", "kind", "width", "height", "codecs", "segments"],
        "properties": {
            "name": {"type": "string", "description": "the rung (e.g. 720p) or audio"},
            "kind": {"type": "string", "enum": ["video", "audio"]},
            "width": {"type": "integer", "minimum": 0},
            "height": {"type": "integer", "minimum": 0},
            "codecs": {"type": "string", "description": "RFC 6381, e.g. avc1.42e01f or mp4a.40.2"},
            "segments": {"type": "integer", "minimum": 0, "description": "playable segments"},
        },
    },
    "Recording": {
        "type": "object",
        "description": "One recorded publishing session.",
        "required": [
            "id", "stream", "state", "started_at", "ended_at", "end_reason", "duration_s", "bytes", "tracks",
            "card_events", "playlist", "replay",
        ],
        "properties": {
            "id": {"type": "string"},
            "stream": {"type": "string"},
            "state": {"type": "string", "enum": ["recording", "complete", "interrupted"]},
            "started_at": {"type": "number", "description": "unix seconds"},
            "ended_at": {"type": "number", "nullable": True, "description": "unix seconds; null while recording "
                         "or when the server stopped without ending it"},
            "end_reason": {"type": "string", "nullable": True},
            "duration_s": {"type": "number", "minimum": 0},
            "bytes": {"type": "integer", "minimum": 0},
            "tracks": {"type": "array", "items": _ref("RecordingTrack")},
            "card_events": {"type": "integer", "minimum": 0},
            "playlist": {"type": "string", "description": "its VOD multivariant playlist (path)"},
            "replay": {"type": "string", "description": "its replay page (path)"},
            "chapters": {
                "type": "array",
                "description": "every card shown, at its moment (one recording only)",
                "items": {
                    "type": "object",
                    "required": ["seq", "at_s", "card"],
                    "properties": {"seq": {"type": "integer"}, "at_s": {"type": "number"}, "card": _ref("Card")},
                },
            },
        },
    },
    "RecordingList": {
        "type": "object",
        "required": ["stream", "recordings"],
        "properties": {
            "stream": {"type": "string"},
            "recordings": {"type": "array", "items": _ref("Recording"), "description": "newest first"},
        },
    },
    "RecordingComments": {
        "type": "object",
        "required": ["recording", "comments", "truncated"],
        "properties": {
            "recording": {"type": "string"},
            "comments": {
                "type": "array",
                "description": "oldest first, deleted ones left out",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "role", "text", "at_s"],
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "role": {"type": "string", "enum": ["viewer", "moderator", "host"]},
                        "text": {"type": "string"},
                        "at_s": {"type": "number", "minimum": 0, "description": "seconds into the recording"},
                    },
                },
            },
            "truncated": {"type": "boolean", "description": "more than the first 20,000 were posted"},
        },
    },
}  # fmt: skip


def _path_params(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    stream = {"name": "stream", "in": "path", "required": True, "schema": {"type": "string", "pattern": STREAM}}
    return [stream, *extra]


CARD_PARAM = {"name": "card", "in": "path", "required": True, "schema": {"type": "string", "pattern": CARD_ID}}
RECORDING_PARAM = {
    "name": "recording",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9A-Za-z-]{1,40}$"},
}
COMMENT_PARAM = {
    "name": "comment",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999},
}
SSE = {"200": {"description": "Server-Sent Events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


def _card_action(name: str, summary: str) -> dict[str, Any]:
    return {
        "operationId": name,
        "summary": summary,
        "tags": ["cards"],
        "security": HOST,
        "responses": {"200": _json(_ref("CardEvent"), "the resulting event")} | _errors(401, 403, 404, 429),
    }


def _paths() -> dict[str, Any]:
    base = "/api/streams/{stream}"
    return {
        f"{base}/cards": {
            "parameters": _path_params(),
            "get": {
                "operationId": "listCards",
                "summary": "The catalogue and what is on screen",
                "tags": ["cards"],
                "security": [{}],
                "responses": {"200": _json(_ref("CardList"), "cards")} | _errors(404),
            },
            "post": {
                "operationId": "upsertCard",
                "summary": "Create or update a product card",
                "tags": ["cards"],
                "security": HOST,
                "requestBody": _body(_ref("Card")),
                "responses": {"200": _json(_ref("CardEvent"), "the resulting event")}
                | _errors(401, 403, 404, 408, 413, 422, 429),
            },
        },
        f"{base}/cards/{{card}}/show": {
            "parameters": _path_params(CARD_PARAM),
            "post": _card_action("showCard", "Put a card on screen"),
        },
        f"{base}/cards/{{card}}/hide": {
            "parameters": _path_params(CARD_PARAM),
            "post": _card_action("hideCard", "Take a card off screen"),
        },
        f"{base}/cards/{{card}}": {
            "parameters": _path_params(CARD_PARAM),
            "delete": _card_action("deleteCard", "Remove a card from the catalogue"),
        },
        f"{base}/orders": {
            "parameters": _path_params(),
            "post": {
                "operationId": "reportOrder",
                "summary": "Report an order: the card's stock and sold count change for every viewer",
                "tags": ["cards"],
                "security": HOST,
                "requestBody": _body(_ref("Order")),
                "responses": {"200": _json(_ref("CardEvent"), "the card's update event")}
                | _errors(401, 403, 404, 408, 409, 413, 422, 429),
            },
        },
        f"{base}/stats": {
            "parameters": _path_params(),
            "get": {
                "operationId": "getStats",
                "summary": "Shop analytics: viewers, per-card impressions, clicks and CTR, minute by minute",
                "tags": ["cards"],
                "security": HOST,
                "responses": {"200": _json(_ref("Stats"), "the stream's analytics")} | _errors(401, 403, 404),
            },
        },
        f"{base}/events": {
            "parameters": _path_params(),
            "get": {
                "operationId": "cardEvents",
                "summary": "Card events as SSE, for players without a data channel",
                "tags": ["cards"],
                "security": ANYONE_ON_OPEN,
                "responses": SSE | _errors(401, 403, 404),
            },
        },
        f"{base}/comments": {
            "parameters": _path_params(),
            "post": {
                "operationId": "postComment",
                "summary": "Post a comment (players without a data channel; the host with its key)",
                "tags": ["comments"],
                "security": ANYONE_ON_OPEN,
                "requestBody": _body(_ref("NewComment")),
                "responses": {"201": _json(_ref("Comment"), "accepted, as its author sees it")}
                | _errors(400, 401, 403, 404, 408, 413, 422, 429, 503),
            },
            "get": {
                "operationId": "listComments",
                "summary": "Recent comments, like totals and moderation counts (host)",
                "tags": ["comments"],
                "security": HOST,
                "responses": {"200": _json(_ref("CommentList"), "recent comments")} | _errors(401, 403, 404),
            },
        },
        f"{base}/comments/{{comment}}": {
            "parameters": _path_params(COMMENT_PARAM),
            "delete": {
                "operationId": "deleteComment",
                "summary": "Delete a comment: it disappears for every viewer",
                "tags": ["moderation"],
                "security": HOST,
                "responses": _text_ok("deleted") | _errors(401, 403, 404),
            },
        },
        f"{base}/comments/{{comment}}/pin": {
            "parameters": _path_params(COMMENT_PARAM),
            "post": {
                "operationId": "pinComment",
                "summary": "Pin a recent comment above the comments for every viewer (in place of any other)",
                "tags": ["moderation"],
                "security": HOST,
                "responses": _text_ok("pinned") | _errors(401, 403, 404),
            },
            "delete": {
                "operationId": "unpinComment",
                "summary": "Unpin it (404 when it is not the pinned comment)",
                "tags": ["moderation"],
                "security": HOST,
                "responses": _text_ok("unpinned") | _errors(401, 403, 404),
            },
        },
        f"{base}/comments/events": {
            "parameters": _path_params(),
            "get": {
                "operationId": "commentEvents",
                "summary": "Every accepted comment, removal and like total as SSE (host console)",
                "tags": ["comments"],
                "security": HOST,
                "responses": SSE | _errors(401, 403, 404),
            },
        },
        f"{base}/moderation": {
            "parameters": _path_params(),
            "post": {
                "operationId": "moderate",
                "summary": "Ban, unban or mute a viewer by its sub",
                "tags": ["moderation"],
                "security": HOST,
                "requestBody": _body(_ref("Moderation")),
                "responses": _text_ok("done") | _errors(400, 401, 403, 404, 408, 413),
            },
        },
        f"{base}/likes": {
            "parameters": _path_params(),
            "post": {
                "operationId": "postLikes",
                "summary": "Count a batch of like taps (or of one gift)",
                "tags": ["comments"],
                "security": ANYONE_ON_OPEN,
                "requestBody": _body(_ref("Likes")),
                "responses": {"204": {"description": "counted"}} | _errors(400, 401, 403, 404, 408, 413, 422),
            },
        },
        f"{base}/recordings": {
            "parameters": _path_params(),
            "get": {
                "operationId": "listRecordings",
                "summary": "The stream's recorded sessions, newest first",
                "tags": ["recordings"],
                "security": VIEWER_ON_OPEN,
                "responses": {"200": _json(_ref("RecordingList"), "recordings")} | _errors(401, 403, 404),
            },
        },
        f"{base}/recordings/{{recording}}": {
            "parameters": _path_params(RECORDING_PARAM),
            "get": {
                "operationId": "getRecording",
                "summary": "One recording, with its card chapters",
                "tags": ["recordings"],
                "security": VIEWER_ON_OPEN,
                "responses": {"200": _json(_ref("Recording"), "the recording")} | _errors(401, 403, 404),
            },
            "delete": {
                "operationId": "deleteRecording",
                "summary": "Delete a finished recording (409 while it is being written)",
                "tags": ["recordings"],
                "security": HOST,
                "responses": _text_ok("deleted") | _errors(401, 403, 404, 409),
            },
        },
        f"{base}/recordings/{{recording}}/comments": {
            "parameters": _path_params(RECORDING_PARAM),
            "get": {
                "operationId": "getRecordingComments",
                "summary": "The session's comments, each at its moment in the recording",
                "tags": ["recordings"],
                "security": VIEWER_ON_OPEN,
                "responses": {"200": _json(_ref("RecordingComments"), "comments")} | _errors(401, 403, 404),
            },
        },
        f"{base}/tokens": {
            "parameters": _path_params(),
            "post": {
                "operationId": "mintToken",
                "summary": "Mint a viewer token for one buyer of a protected stream",
                "tags": ["tokens"],
                "security": HOST,
                "requestBody": _body(_ref("TokenRequest")),
                "responses": {"201": _json(_ref("Token"), "the token")} | _errors(400, 401, 403, 404, 408, 409, 413),
            },
        },
    }


def document(version: str) -> dict[str, Any]:
    """The OpenAPI document for this server (``version`` is LiveCart's)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "LiveCart shop API",
            "version": version,
            "description": "Product cards, comments, likes, moderation, stats, recordings and viewer tokens of a "
            "LiveCart stream. Errors are text/plain, one line.",
        },
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "hostKey": {"type": "http", "scheme": "bearer", "description": "the stream's publish or host key"},
                "viewerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }

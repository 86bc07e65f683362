"""Relay: the stream registry, viewer sessions, the per-packet fan-out, cards, the HTTP edge, the CLI.

Sub-packages, from the wire inwards (each imports only those listed after it, and ``ingest`` /
``transcode``; the import contracts in ``pyproject.toml`` enforce it):

- ``relay.http``: the aiohttp application, request reading, middleware, card HTTP API.
- ``relay.sessions``: streams, the registry, viewer sessions, admission limits, rung choice, ABR.
- ``relay.cards``: product cards: the value, the pure board, storage and delivery.
- ``relay.talk``: the conversation: comments, likes, moderation, the viewers' display.
- ``relay.media``: the per-packet path: RTP, the per-viewer rewriter, history, fan-out, UDP.
- ``relay.observe``: what the process reports about itself (metrics, loop lag, descriptors).

Beside them: ``config`` (one frozen tree), ``messages`` (the viewer wire protocol), ``identity``,
``errors``, ``ratelimit``, and ``cli`` on top of everything.
"""

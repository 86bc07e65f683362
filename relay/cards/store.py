"""Product cards on disk: one SQLite database for every stream's catalogue, screen and history.

Synchronous ``sqlite3``; the caller runs every method in one dedicated worker thread (so one
connection, ``check_same_thread=False``, is never used by two threads at once).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from relay.cards.board import CardBoard, CardEvent
from relay.cards.card import Card, card_to_dict, parse_card

KEEP_EVENTS = 10_000  # events kept on disk per stream

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalogue (stream TEXT, id TEXT, card TEXT, position INTEGER,
                                      PRIMARY KEY (stream, id));
CREATE TABLE IF NOT EXISTS on_screen (stream TEXT, id TEXT, position INTEGER, shown_at REAL,
                                      PRIMARY KEY (stream, id));
CREATE TABLE IF NOT EXISTS events (stream TEXT, seq INTEGER, action TEXT, card TEXT, pts_ms INTEGER,
                                   sent_at REAL, PRIMARY KEY (stream, seq));
CREATE TABLE IF NOT EXISTS streams (stream TEXT PRIMARY KEY, last_seq INTEGER);
"""


class CardStore:
    """Owns the SQLite connection; every ``record`` is one transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def record(self, stream: str, event: CardEvent, board: CardBoard) -> None:
        """Append ``event`` and make the stored catalogue and screen equal to ``board``'s."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                (stream, event.seq, event.action, json.dumps(card_to_dict(event.card)), event.pts_ms, event.sent_at),
            )
            db.execute("INSERT OR REPLACE INTO streams VALUES (?, ?)", (stream, board.last_seq))
            db.execute("DELETE FROM catalogue WHERE stream = ?", (stream,))
            db.executemany(
                "INSERT INTO catalogue VALUES (?, ?, ?, ?)",
                [(stream, c.id, json.dumps(card_to_dict(c)), n) for n, c in enumerate(board.catalogue())],
            )
            db.execute("DELETE FROM on_screen WHERE stream = ?", (stream,))
            db.executemany(
                "INSERT INTO on_screen VALUES (?, ?, ?, ?)",
                [(stream, i, n, board.shown_at(i) or 0.0) for n, i in enumerate(board.on_screen_ids())],
            )
            if event.seq % 1000 == 0:
                db.execute("DELETE FROM events WHERE stream = ? AND seq <= ?", (stream, event.seq - KEEP_EVENTS))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def load(self, stream: str, *, max_catalogue: int, history: int) -> CardBoard:
        """A board equal to the one last recorded for ``stream`` (empty if none)."""
        db = self._db
        board = CardBoard(max_catalogue=max_catalogue, history=history)
        row = db.execute("SELECT last_seq FROM streams WHERE stream = ?", (stream,)).fetchone()
        if row is None:
            return board
        catalogue = [
            parse_card(json.loads(card))
            for (card,) in db.execute("SELECT card FROM catalogue WHERE stream = ? ORDER BY position", (stream,))
        ]
        on_screen = [
            (i, float(t))
            for i, t in db.execute("SELECT id, shown_at FROM on_screen WHERE stream = ? ORDER BY position", (stream,))
        ]
        rows = db.execute(
            "SELECT seq, action, card, pts_ms, sent_at FROM events WHERE stream = ? ORDER BY seq DESC LIMIT ?",
            (stream, history),
        ).fetchall()
        events = [CardEvent(seq, action, _card(card), pts, sent) for seq, action, card, pts, sent in reversed(rows)]
        board.restore(catalogue, on_screen, int(row[0]), events)
        return board

    def close(self) -> None:
        self._db.close()


def _card(text: str) -> Card:
    return parse_card(json.loads(text))

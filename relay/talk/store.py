"""The conversation on disk: comments (with their media time), moderation actions and like totals.

Synchronous ``sqlite3`` in the same database file as the cards, with its own connection; the
caller runs every method in the card store's one worker thread. Comments are written in batches
(one transaction per tick of ``relay.talk.feed``), so a crash loses at most the last tick.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from relay.talk.comments import Comment

SCHEMA = """
CREATE TABLE IF NOT EXISTS comments (stream TEXT, id INTEGER, at REAL, pts_ms INTEGER, sub TEXT, name TEXT,
                                     role TEXT, text TEXT, deleted INTEGER DEFAULT 0, PRIMARY KEY (stream, id));
CREATE TABLE IF NOT EXISTS moderation (stream TEXT, at REAL, action TEXT, sub TEXT, comment_id INTEGER);
CREATE TABLE IF NOT EXISTS likes (stream TEXT PRIMARY KEY, total INTEGER, gifts TEXT);
CREATE INDEX IF NOT EXISTS comments_at ON comments (stream, at);
"""


class TalkStore:
    """Owns its SQLite connection; each method is one transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def write(
        self,
        stream: str,
        comments: Sequence[Comment],
        actions: Sequence[tuple[float, str, str | None, int | None]],
        likes: tuple[int, dict[str, int]] | None,
    ) -> None:
        """One tick's comments, moderation actions (at, action, sub, comment id) and like totals."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO comments (stream, id, at, pts_ms, sub, name, role, text) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(stream, c.id, c.at, c.pts_ms, c.sub, c.name, c.role, c.text) for c in comments],
            )
            for at, action, sub, comment_id in actions:
                db.execute("INSERT INTO moderation VALUES (?, ?, ?, ?, ?)", (stream, at, action, sub, comment_id))
                if action == "delete" and comment_id is not None:
                    db.execute("UPDATE comments SET deleted = 1 WHERE stream = ? AND id = ?", (stream, comment_id))
            if likes is not None:
                db.execute("INSERT OR REPLACE INTO likes VALUES (?, ?, ?)", (stream, likes[0], json.dumps(likes[1])))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def load(self, stream: str) -> tuple[int, int, dict[str, int], set[str]]:
        """(last comment id, like total, gift counts, banned subs) as last stored for ``stream``."""
        db = self._db
        (last_id,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM comments WHERE stream = ?", (stream,)).fetchone()
        row = db.execute("SELECT total, gifts FROM likes WHERE stream = ?", (stream,)).fetchone()
        total, gifts = (int(row[0]), json.loads(row[1])) if row else (0, {})
        banned: set[str] = set()
        for action, sub in db.execute("SELECT action, sub FROM moderation WHERE stream = ? ORDER BY at", (stream,)):
            if action == "ban" and sub:
                banned.add(sub)
            elif action == "unban" and sub:
                banned.discard(sub)
        return int(last_id), total, gifts, banned

    def recent(self, stream: str, limit: int) -> list[Comment]:
        rows = self._db.execute(
            "SELECT id, sub, name, role, text, at, pts_ms FROM comments WHERE stream = ? AND deleted = 0 "
            "ORDER BY id DESC LIMIT ?",
            (stream, limit),
        ).fetchall()
        return [Comment(i, s, n, r, t, a, p) for i, s, n, r, t, a, p in reversed(rows)]

    def between(self, stream: str, since: float, until: float, limit: int) -> list[Comment]:
        """Comments posted from ``since`` to ``until`` (wall seconds), oldest first, deleted ones
        left out, at most ``limit`` (a replay's conversation)."""
        rows = self._db.execute(
            "SELECT id, sub, name, role, text, at, pts_ms FROM comments WHERE stream = ? AND deleted = 0 "
            "AND at >= ? AND at <= ? ORDER BY at, id LIMIT ?",
            (stream, since, until, limit),
        ).fetchall()
        return [Comment(i, s, n, r, t, a, p) for i, s, n, r, t, a, p in rows]

    def close(self) -> None:
        self._db.close()
